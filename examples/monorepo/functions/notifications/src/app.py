from common import respond


def lambda_handler(event, context):
    return respond(202, {"notified": event.get("to", "nobody")})
