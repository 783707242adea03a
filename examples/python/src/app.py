"""Echoes the event back, serialised with ujson (a compiled extension)."""

import os

import ujson


def lambda_handler(event, context):
    return {
        "statusCode": 200,
        "body": ujson.dumps({"received": event, "log_level": os.environ.get("LOG_LEVEL")}),
    }
