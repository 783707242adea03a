from common import respond


def lambda_handler(event, context):
    return respond(201, {"order": event.get("id"), "status": "accepted"})
