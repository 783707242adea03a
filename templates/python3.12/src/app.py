"""The {{name}} function: Lambda calls lambda_handler(event, context)."""

import json


def lambda_handler(event, context):
    name = (event or {}).get("name", "world")
    return {
        "statusCode": 200,
        "body": json.dumps({"message": f"hello, {name}"}),
    }
