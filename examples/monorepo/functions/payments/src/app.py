from common import respond


def lambda_handler(event, context):
    return respond(200, {"payment": event.get("id"), "amount": event.get("amount", 0)})
