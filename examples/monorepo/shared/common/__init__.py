"""Code every function of the monorepo shares: one layer, built once, reused by all."""

import json


def respond(status, body):
    return {"statusCode": status, "body": json.dumps(body, sort_keys=True)}
