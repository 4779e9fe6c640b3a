#!/usr/bin/env python3
"""Starts moto's server in-process for the AWS tests, with three test-only additions.

Owns: request counting per service action (GET /_counts, POST /_counts/reset), fault injection
(POST /_faults: answer the next N matching calls with an error), IAM enforcement that works with
web identity and matches resource ARNs (POST /_iam/enforce, POST /_iam/role, POST /_iam/user), and the
lifetime of ECR authorization tokens (POST /_ecr/token-lifetime {"seconds": N}: expiresAt = now + N;
moto's own answer is fixed at 2015-01-01).
Also answers IAM refusals to JSON-protocol calls in AWS's JSON error shape (moto sends XML there).
Must not change moto's behaviour for anything else. It exits when its stdin closes, so a test that dies
never leaves a server behind.

Usage: moto_launcher.py [--host 127.0.0.1] [--port 0]; prints "MOTO_READY <url>" once listening.
"""

import argparse
import io
import json
import os
import re
import sys
import threading
import uuid
from urllib.parse import parse_qs

from werkzeug.serving import make_server

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

TARGET_SERVICES = {
    "secretsmanager": "secretsmanager",
    "AmazonSSM": "ssm",
    "AmazonSQS": "sqs",
    "AWSEvents": "events",
    "TrentService": "kms",
    "AmazonEC2ContainerRegistry_V20150921": "ecr",
}
# Calls made without a signature: the web identity token is the proof (AWS does not sign these).
UNSIGNED_ACTIONS = {"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"}
STS_ACTIONS = {"AssumeRole", "AssumeRoleWithWebIdentity", "AssumeRoleWithSAML", "GetCallerIdentity", "GetSessionToken"}

_lock = threading.Lock()
_counts = {}
_faults = []  # dicts: action, remaining, status, code, message
_ecr_token_lifetime = [None]  # seconds, or None for moto's fixed expiry


def enforcing():
    return ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT


def identify(environ, body):
    """(service, action) of an AWS request, from X-Amz-Target (JSON protocols) or the form (query protocol)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target and "." in target:
        prefix, action = target.split(".", 1)
        return TARGET_SERVICES.get(prefix, prefix.lower()), action
    action = None
    if body:
        try:
            action = parse_qs(body.decode("utf-8", "replace")).get("Action", [None])[0]
        except Exception:  # noqa: BLE001 - an unparseable body is simply not counted by action
            action = None
    if action is None:
        action = parse_qs(environ.get("QUERY_STRING", "")).get("Action", [None])[0]
    service = None
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        if len(scope) >= 4:
            service = scope[3]
    if service is None and action in STS_ACTIONS:
        service = "sts"
    return service or "unknown", action or environ.get("PATH_INFO", "")


def fault_response(service, action, fault, start_response):
    code, message, status = fault["code"], fault.get("message", "injected by moto_launcher"), fault["status"]
    request_id = str(uuid.uuid4())
    if service in ("sts", "iam", "unknown"):
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    else:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
    headers += [("x-amzn-RequestId", request_id), ("Content-Length", str(len(body)))]
    start_response(f"{status} Injected", headers)
    return [body]


# moto answers IAM refusals in XML even for JSON-protocol services; AWS uses these JSON error types there.
JSON_ERROR_TYPES = {
    "AccessDenied": "AccessDeniedException",
    "InvalidClientTokenId": "UnrecognizedClientException",
    "SignatureDoesNotMatch": "InvalidSignatureException",
}


def json_errors(app, environ, start_response):
    """Run moto, and rewrite an XML error answer to a JSON-protocol call into the JSON shape AWS sends."""
    captured = {}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    body = b"".join(app(environ, capture))
    status, headers = captured["status"], captured["headers"]
    if int(status.split()[0]) >= 400 and b"<ErrorResponse" in body:
        text = body.decode("utf-8", "replace")
        code = re.search(r"<Code>(.*?)</Code>", text)
        message = re.search(r"<Message>(.*?)</Message>", text, re.S)
        code = JSON_ERROR_TYPES.get(code.group(1), code.group(1)) if code else "UnknownError"
        body = json.dumps({"__type": code, "message": message.group(1) if message else ""}).encode()
        request_id = [v for k, v in headers if k.lower() == "x-amzn-requestid"] or [str(uuid.uuid4())]
        status = "400 Bad Request"
        headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-ErrorType", code),
            ("x-amzn-RequestId", request_id[0]),
            ("Content-Length", str(len(body))),
        ]
    else:
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [body]


def json_response(start_response, payload, status="200 OK"):
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class Launcher:
    def __init__(self, app, url_holder):
        self.app = app
        self.url_holder = url_holder

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_"):
            return self.control(environ, start_response, path, body)
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)
        service, action = identify(environ, body)
        with _lock:
            name = f"{service}.{action}"
            _counts[name] = _counts.get(name, 0) + 1
            for fault in _faults:
                if fault["remaining"] > 0 and fault["action"] in (action, name):
                    fault["remaining"] -= 1
                    _counts["_faults_served"] = _counts.get("_faults_served", 0) + 1
                    return fault_response(service, action, fault, start_response)
        if environ.get("HTTP_X_AMZ_TARGET"):
            return json_errors(self.app, environ, start_response)
        return self.app(environ, start_response)

    def control(self, environ, start_response, path, body):
        method = environ.get("REQUEST_METHOD")
        payload = json.loads(body) if body else {}
        if path == "/_counts" and method == "GET":
            with _lock:
                return json_response(start_response, dict(_counts))
        if path == "/_counts/reset" and method == "POST":
            with _lock:
                _counts.clear()
            return json_response(start_response, {})
        if path == "/_faults" and method == "POST":
            with _lock:
                _faults.append(
                    {
                        "action": payload["action"],
                        "remaining": int(payload.get("count", 1)),
                        "status": int(payload.get("status", 400)),
                        "code": payload.get("code", "ThrottlingException"),
                        "message": payload.get("message", "Rate exceeded"),
                    }
                )
            return json_response(start_response, {})
        if path == "/_iam/role" and method == "POST":
            return json_response(start_response, iam_role(self.url_holder[0], payload))
        if path == "/_iam/user" and method == "POST":
            return json_response(start_response, iam_user(self.url_holder[0], payload))
        if path == "/_ecr/token-lifetime" and method == "POST":
            with _lock:
                _ecr_token_lifetime[0] = payload.get("seconds")
            return json_response(start_response, {})
        if path == "/_iam/enforce" and method == "POST":
            ActionAuthenticatorMixin.request_count = 0
            settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
            return json_response(start_response, {})
        return json_response(start_response, {"error": f"unknown control path {path}"}, "404 Not Found")


def _iam_client(url, account):
    import boto3

    # moto maps the root of an account to access keys of the form "<account>" when none is known; the
    # IAM setup calls are made before enforcement is switched on, so any key works.
    return boto3.client(
        "iam",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )


def iam_role(url, payload):
    """Create a role with a trust policy and one inline policy; returns its ARN."""
    iam = _iam_client(url, payload.get("account"))
    trust = payload.get(
        "trust",
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"},
                {"Effect": "Allow", "Principal": {"Federated": "*"}, "Action": "sts:AssumeRoleWithWebIdentity"},
            ],
        },
    )
    role = iam.create_role(RoleName=payload["name"], AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.put_role_policy(RoleName=payload["name"], PolicyName="inline", PolicyDocument=json.dumps(payload["policy"]))
    return {"arn": role["Arn"]}


def iam_user(url, payload):
    """Create a user with one inline policy and an access key; returns the key pair."""
    iam = _iam_client(url, payload.get("account"))
    iam.create_user(UserName=payload["name"])
    iam.put_user_policy(UserName=payload["name"], PolicyName="inline", PolicyDocument=json.dumps(payload["policy"]))
    key = iam.create_access_key(UserName=payload["name"])["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def install_iam_patches():
    """Make moto's IAM enforcement usable for least-privilege tests (only active once enforcing)."""
    from moto.iam.access_control import IAMRequest
    from moto.secretsmanager.responses import SecretsManagerResponse
    from moto.ssm.responses import SimpleSystemManagerResponse

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authenticate(self, iam_request_cls, resource="*"):
        # moto reads the Authorization header of every call and fails with HTTP 500 on unsigned ones.
        if "Authorization" not in self.headers and self._get_action() in UNSIGNED_ACTIONS:
            return
        resources = getattr(self, "_resources_to_authorize", None)
        if resources:
            for one in resources():
                original(self, iam_request_cls, one)
            return
        original(self, iam_request_cls, resource)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate

    def secret_arn(response, secret_id):
        secret = response.backend.secrets.get(secret_id)
        if secret is not None:
            return secret.arn
        if secret_id.startswith("arn:"):
            return secret_id
        return f"arn:aws:secretsmanager:{response.region}:{response.current_account}:secret:{secret_id}"

    def sm_resources(self):
        body = json.loads(self.body or "{}")
        if "SecretId" in body:
            return [secret_arn(self, body["SecretId"])]
        return ["*"]

    SecretsManagerResponse._resources_to_authorize = sm_resources

    original_batch = SecretsManagerResponse.batch_get_secret_value

    def batch_get_secret_value(self):
        # AWS authorizes secretsmanager:GetSecretValue per secret and reports refusals in Errors.
        body = json.loads(self.body or "{}")
        ids = body.get("SecretIdList") or []
        if not enforcing() or not ids:
            return original_batch(self)
        allowed, denied = [], []
        for secret_id in ids:
            request = IAMRequest(
                account_id=self.current_account,
                method=self.method,
                path=self.raw_path,
                data=self.data,
                body=self.raw_body,
                headers=self.headers,
                action="GetSecretValue",
            )
            try:
                request.check_action_permitted(secret_arn(self, secret_id))
                allowed.append(secret_id)
            except Exception:  # noqa: BLE001 - moto raises its HTTP error types for a denial
                denied.append(secret_id)
        if allowed:
            values, errors, _ = self.backend.batch_get_secret_value(
                secret_id_list=allowed, filters=[], max_results=None, next_token=None
            )
        else:
            values, errors = [], []
        for secret_id in denied:
            errors.append(
                {
                    "SecretId": secret_id,
                    "ErrorCode": "AccessDeniedException",
                    "Message": "not authorized to perform: secretsmanager:GetSecretValue",
                }
            )
        return json.dumps({"SecretValues": values, "Errors": errors})

    SecretsManagerResponse.batch_get_secret_value = batch_get_secret_value

    def parameter_arn(self, name):
        if name.startswith("arn:"):
            return name.rsplit(":", 1)[0] if name.count(":") > 5 else name
        base = name.split(":", 1)[0]
        return f"arn:aws:ssm:{self.region}:{self.current_account}:parameter/{base.lstrip('/')}"

    def ssm_resources(self):
        body = json.loads(self.body or "{}")
        names = body.get("Names") or ([body["Name"]] if "Name" in body else [])
        if "ResourceId" in body:
            names = [body["ResourceId"]]
        if "Path" in body:
            # AWS authorizes GetParametersByPath against the path's own ARN (parameter/app for /app).
            names = [body["Path"]]
        return [parameter_arn(self, n) for n in names] or ["*"]

    SimpleSystemManagerResponse._resources_to_authorize = ssm_resources


def install_ecr_patch():
    """Let a test choose the lifetime of ECR tokens (moto dates every token 2015-01-01)."""
    from datetime import datetime, timedelta, timezone

    import moto.ecr.responses as ecr_responses

    class TokenClock(datetime):
        # moto's responses module builds only the token's expiresAt with datetime(...).
        def __new__(cls, *args, **kwargs):
            lifetime = _ecr_token_lifetime[0]
            if lifetime is not None:
                return datetime.now(timezone.utc) + timedelta(seconds=lifetime)
            return datetime(*args, **kwargs)

    ecr_responses.datetime = TokenClock


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    install_iam_patches()
    install_ecr_patch()
    url_holder = [None]
    app = Launcher(DomainDispatcherApplication(create_backend_app), url_holder)
    server = make_server(args.host, args.port, app, threaded=True)
    url = f"http://{args.host}:{server.server_port}"
    url_holder[0] = url

    def exit_when_parent_goes():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=exit_when_parent_goes, daemon=True).start()
    print(f"MOTO_READY {url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
