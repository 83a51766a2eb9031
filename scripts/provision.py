#!/usr/bin/env python3
"""Provision the local AWS server (moto) from template.yaml and write .local-stack/env.

Creates, under the names the template gives them, every resource that a function environment
variable points at (Globals.Function plus each function's own variables) and whatever those
resources reference in turn (e.g. a queue's dead-letter queue). Safe to re-run: existing
resources are reconciled, tables whose keys or indexes changed are recreated (local data only).

IAM enforcement: an IAM user `local-admin` with an allow-all inline policy and an access key is
created while moto's auth is off; every other call uses that key, which is written to the env
file; then auth is switched on (unless LOCAL_STACK_IAM=off). Against a server whose auth is
already on, the key from the existing env file is reused. A `customer-admin` user in account
111111111111 stands for a customer's account (CUSTOMER_* variables).

The env file holds every function variable as the template resolves it, except
CONNECTOR_PRINCIPAL_ARN, which locally names the local-admin user (see docs/local-stack.md); the
template's value is kept as CONNECTOR_ACCESS_ROLE_ARN.

With --event-sources-file it also writes what AWS would wire between the services: every
function's SQS event source mappings (queue URL and ARN, batch size, batching window, response
types) and Schedule events, for scripts/poller.py (see docs/local-stack.md).

Also usable without a server: `provision.py --check-refs` reports Refs, GetAtts and Sub variables
that name nothing (cfn-lint misses those in Globals and in SAM policy-template parameters).

Run by scripts/local-stack with the venv that holds moto (boto3 and PyYAML come with it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import yaml

STACK_NAME = "s3-connector-local"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
PARTITION = "aws"
ADMIN_USER = "local-admin"
# The platform's account as the functions see it locally (see where it is set).
LOCAL_PLATFORM_ACCOUNT_ID = "999999999999"
ADMIN_POLICY_NAME = "allow-all"
ADMIN_ARN = f"arn:{PARTITION}:iam::{ACCOUNT_ID}:user/{ADMIN_USER}"
# A second account that stands for a customer's AWS account (their roles and buckets).
CUSTOMER_ACCOUNT_ID = "111111111111"
CUSTOMER_ADMIN_USER = "customer-admin"

NO_VALUE = object()  # AWS::NoValue


def log(msg: str) -> None:
    print(f"[provision] {msg}", file=sys.stderr, flush=True)


class ProvisionError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Template loading: YAML with CloudFormation short-form tags

_TAGS = {
    "Ref": "Ref",
    "Condition": "Condition",
    "GetAtt": "Fn::GetAtt",
    "Sub": "Fn::Sub",
    "Join": "Fn::Join",
    "If": "Fn::If",
    "Equals": "Fn::Equals",
    "Not": "Fn::Not",
    "And": "Fn::And",
    "Or": "Fn::Or",
    "Select": "Fn::Select",
    "Split": "Fn::Split",
    "FindInMap": "Fn::FindInMap",
    "Base64": "Fn::Base64",
    "Cidr": "Fn::Cidr",
    "ImportValue": "Fn::ImportValue",
    "GetAZs": "Fn::GetAZs",
    "Transform": "Fn::Transform",
    "Length": "Fn::Length",
    "ToJsonString": "Fn::ToJsonString",
}


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref X` into {"Ref": "X"}, `!GetAtt A.B` into
    {"Fn::GetAtt": ["A", "B"]}, `!Sub ...` into {"Fn::Sub": ...} and so on."""


def _construct_tag(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> Any:
    if tag_suffix not in _TAGS:
        raise yaml.constructor.ConstructorError(
            None, None, f"unknown CloudFormation tag !{tag_suffix}", node.start_mark
        )
    key = _TAGS[tag_suffix]
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if key == "Fn::GetAtt":
            resource, _, attribute = value.partition(".")
            value = [resource, attribute]
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {key: value}


CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


# ---------------------------------------------------------------------------------------------
# Intrinsic functions

PSEUDO = {
    "AWS::StackName": STACK_NAME,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Partition": PARTITION,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackId": f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
    "AWS::NotificationARNs": [],
}

_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Evaluates intrinsic functions. Resource references go through `attr`, a callback that
    returns a resource's Ref value (attribute None) or a GetAtt attribute."""

    def __init__(self, template: dict[str, Any], params: dict[str, Any],
                 attr: Callable[[str, str | None], Any]):
        self.template = template
        self.params = params
        self.attr = attr
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise ProvisionError(f"condition {name!r} is not defined")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.params:
            return self.params[name]
        if name in (self.template.get("Resources") or {}):
            return self.attr(name, None)
        raise ProvisionError(f"Ref to undefined name {name!r}")

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            inner = match.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                value = variables[inner]
            elif "." in inner and inner.split(".", 1)[0] in (self.template.get("Resources") or {}):
                resource, attribute = inner.split(".", 1)
                value = self.attr(resource, attribute)
            else:
                value = self.ref(inner)
            return str(value)

        return _SUB_VAR.sub(replace, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._fn(key, arg)
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def _fn(self, key: str, arg: Any) -> Any:
        if key == "Fn::GetAtt":
            resource, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.attr(self.resolve(resource), self.resolve(attribute))
        if key == "Fn::Sub":
            if isinstance(arg, str):
                return self.sub(arg, {})
            text, variables = arg
            return self.sub(text, {k: self.resolve(v) for k, v in variables.items()})
        if key == "Fn::Join":
            sep, items = arg
            return self.resolve(sep).join(str(i) for i in self.resolve(items))
        if key == "Fn::If":
            name, if_true, if_false = arg
            return self.resolve(if_true if self.condition(name) else if_false)
        if key == "Fn::Equals":
            a, b = self.resolve(arg)
            return str(a) == str(b)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(a) for a in arg)
        if key == "Fn::Or":
            return any(self.resolve(a) for a in arg)
        if key == "Fn::Select":
            index, items = self.resolve(arg)
            return items[int(index)]
        if key == "Fn::Split":
            sep, text = self.resolve(arg)
            return text.split(sep)
        if key == "Fn::FindInMap":
            name, top, second = (self.resolve(a) for a in arg[:3])
            return self.template["Mappings"][name][top][second]
        if key == "Fn::Base64":
            import base64
            return base64.b64encode(str(self.resolve(arg)).encode()).decode()
        if key == "Fn::GetAZs":
            return [f"{REGION}{z}" for z in "abc"]
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg), separators=(",", ":"))
        if key == "Fn::Length":
            return len(self.resolve(arg))
        raise ProvisionError(f"{key} is not supported locally")


# ---------------------------------------------------------------------------------------------
# Reference discovery (which resources the functions need) and the undefined-name check

def references(value: Any, resource_names: set[str]) -> set[str]:
    """Names of resources that `value` refers to through Ref, GetAtt or Sub."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, list):
            for item in v:
                walk(item)
        elif isinstance(v, dict):
            if len(v) == 1:
                (key, arg), = v.items()
                if key == "Ref" and isinstance(arg, str) and arg in resource_names:
                    found.add(arg)
                elif key == "Fn::GetAtt":
                    name = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
                    if name in resource_names:
                        found.add(name)
                elif key == "Fn::Sub":
                    text = arg if isinstance(arg, str) else arg[0]
                    local_vars = set(arg[1]) if isinstance(arg, list) else set()
                    for inner in _SUB_VAR.findall(text):
                        head = inner.split(".", 1)[0]
                        if not inner.startswith("!") and inner not in local_vars and head in resource_names:
                            found.add(head)
            for item in v.values():
                walk(item)

    walk(value)
    return found


def sam_generated_names(template: dict[str, Any]) -> set[str]:
    """Logical ids that the SAM transform creates and that templates may reference."""
    names: set[str] = set()
    for name, res in (template.get("Resources") or {}).items():
        rtype = res.get("Type")
        props = res.get("Properties") or {}
        if rtype == "AWS::Serverless::Function":
            if "Role" not in props:
                names.add(f"{name}Role")
            names.add(f"{name}Alias")
            for event in (props.get("Events") or {}):
                names.add(f"{name}{event}")
                names.add(f"{name}{event}Permission")
        elif rtype == "AWS::Serverless::HttpApi":
            names.add(f"{name}ApiGatewayDefaultStage")
        elif rtype == "AWS::Serverless::Api":
            names.update({f"{name}Deployment", f"{name}Stage", f"{name}ProdStage"})
    names.update({"ServerlessRestApi", "ServerlessHttpApi"})
    return names


def check_refs(template: dict[str, Any]) -> list[str]:
    """Every Ref/GetAtt/Sub variable/condition that names nothing defined in the template."""
    params = set(template.get("Parameters") or {})
    resources = set(template.get("Resources") or {}) | sam_generated_names(template)
    conditions = set(template.get("Conditions") or {})
    problems: list[str] = []

    def known(name: str) -> bool:
        return name in PSEUDO or name == "AWS::NoValue" or name in params or name in resources

    def walk(v: Any, where: str) -> None:
        if isinstance(v, list):
            for i, item in enumerate(v):
                walk(item, f"{where}[{i}]")
            return
        if not isinstance(v, dict):
            return
        if len(v) == 1:
            (key, arg), = v.items()
            if key == "Ref" and isinstance(arg, str) and not known(arg):
                problems.append(f"{where}: Ref {arg!r} is not a parameter or resource")
            elif key == "Fn::GetAtt":
                name = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
                if isinstance(name, str) and name not in resources:
                    problems.append(f"{where}: GetAtt {name!r} is not a resource")
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                local_vars = set(arg[1]) if isinstance(arg, list) and len(arg) > 1 else set()
                for inner in _SUB_VAR.findall(text if isinstance(text, str) else ""):
                    if inner.startswith("!") or inner in local_vars:
                        continue
                    head = inner.split(".", 1)[0] if "." in inner and not inner.startswith("AWS::") else inner
                    if not known(head):
                        problems.append(f"{where}: Sub variable ${{{inner}}} names nothing")
            elif key == "Fn::If" and isinstance(arg, list) and arg and arg[0] not in conditions:
                problems.append(f"{where}: Fn::If condition {arg[0]!r} is not defined")
        for k, item in v.items():
            walk(item, f"{where}.{k}")

    for section in ("Globals", "Conditions", "Resources", "Outputs"):
        walk(template.get(section) or {}, section)
    return problems


# ---------------------------------------------------------------------------------------------
# Function environment

def function_environments(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Unresolved environment variables of each AWS::Serverless::Function (Globals merged in)."""
    globals_env = (((template.get("Globals") or {}).get("Function") or {})
                   .get("Environment") or {}).get("Variables") or {}
    globals_logging = ((template.get("Globals") or {}).get("Function") or {}).get("LoggingConfig") or {}
    envs: dict[str, dict[str, Any]] = {}
    for name, res in (template.get("Resources") or {}).items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res.get("Properties") or {}
        own = (props.get("Environment") or {}).get("Variables") or {}
        env = {**globals_env, **own}
        # Lambda turns LoggingConfig's ApplicationLogLevel into AWS_LAMBDA_LOG_LEVEL, which the
        # runtime's log subscriber reads; do the same locally. The format stays text locally
        # (JSON is for CloudWatch), so AWS_LAMBDA_LOG_FORMAT is not set.
        logging = {**globals_logging, **(props.get("LoggingConfig") or {})}
        if "ApplicationLogLevel" in logging:
            env["AWS_LAMBDA_LOG_LEVEL"] = logging["ApplicationLogLevel"]
        envs[name] = env
    return envs


# ---------------------------------------------------------------------------------------------
# Event sources (what Lambda's event source mappings and EventBridge rules do in AWS)

def _function_setting(template: dict[str, Any], props: dict[str, Any], key: str, default: Any) -> Any:
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    return props.get(key, globals_fn.get(key, default))


def event_sources(template: dict[str, Any], prov: "Provisioner") -> dict[str, Any]:
    """Every function's `Type: SQS` and `Type: Schedule` events, resolved, with the queues
    provisioned. Read by scripts/poller.py."""
    resource_names = set(prov.resources)
    queues: list[dict[str, Any]] = []
    schedules: list[dict[str, Any]] = []
    for logical_id, res in (template.get("Resources") or {}).items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res.get("Properties") or {}
        binary = (((res.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")) or logical_id
        timeout = int(prov.resolver.resolve(_function_setting(template, props, "Timeout", 3)))
        for event_name, event in (props.get("Events") or {}).items():
            etype = event.get("Type")
            raw = event.get("Properties") or {}
            if etype not in ("SQS", "Schedule"):
                continue
            for dep in sorted(references(raw, resource_names)):
                prov.provision(dep)
            ev = prov.resolver.resolve(raw)
            common = {"function": logical_id, "binary": binary, "event": event_name,
                      "function_timeout": timeout}
            if etype == "SQS":
                queue_arn = ev["Queue"]
                url = next((attrs.get("QueueUrl") for attrs in prov.created.values()
                            if attrs.get("Arn") == queue_arn and attrs.get("QueueUrl")), None)
                if url is None:
                    raise ProvisionError(f"{logical_id}.{event_name}: queue {queue_arn} is not a "
                                         "queue of this template")
                queues.append({
                    **common,
                    "queue_arn": queue_arn,
                    "queue_url": url,
                    "batch_size": int(ev.get("BatchSize", 10)),
                    "maximum_batching_window_seconds": int(ev.get("MaximumBatchingWindowInSeconds", 0)),
                    "function_response_types": list(ev.get("FunctionResponseTypes") or []),
                    "maximum_concurrency": (ev.get("ScalingConfig") or {}).get("MaximumConcurrency"),
                    "enabled": bool(ev.get("Enabled", True)),
                })
            else:
                enabled = ev.get("Enabled", True) and ev.get("State", "ENABLED") == "ENABLED"
                schedules.append({
                    **common,
                    # SAM names the rule <stack>-<Function><Event>-<suffix>; the suffix is dropped.
                    "rule_name": ev.get("Name") or f"{STACK_NAME}-{logical_id}{event_name}",
                    "schedule": ev["Schedule"],
                    "input": ev.get("Input"),
                    "enabled": bool(enabled),
                })
    return {"region": REGION, "account_id": ACCOUNT_ID, "queues": queues, "schedules": schedules}


def write_json_file(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(value, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# moto helpers

class Moto:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint.rstrip("/")

    def client(self, service: str, key_id: str, secret: str, account: str | None = None):
        """A boto3 client. `account` sends moto's x-moto-account-id header, which selects the
        account for requests with auth off (with auth on, the key's own account applies)."""
        import boto3
        from botocore.config import Config

        client = boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 2, "mode": "standard"},
                          s3={"addressing_style": "path"}),
        )
        if account:
            def add_header(request: Any, **_: Any) -> None:
                request.headers["x-moto-account-id"] = account

            client.meta.events.register("before-sign.*.*", add_header)
        return client

    def reset_auth(self, value: str) -> str:
        """POST /moto-api/reset-auth: the number of requests still served without auth
        ("0" = enforce from now on, "inf" = never). Returns the previous value."""
        req = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            data=value.encode(),
            headers={"Content-Type": "text/plain"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - local endpoint
            body = json.loads(resp.read().decode() or "{}")
        return str(body.get("PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT", "?"))

    def caller(self, key_id: str, secret: str) -> str | None:
        """ARN of the caller these keys authenticate as, or None when refused."""
        from botocore.exceptions import ClientError

        try:
            return self.client("sts", key_id, secret).get_caller_identity()["Arn"]
        except ClientError:
            return None

    def auth_enforced(self) -> bool:
        return self.caller("AKIAUNKNOWNPROBE0000", "not-a-secret") is None


def ensure_admin_user(moto: Moto, account: str, user: str,
                      existing: tuple[str, str] | None) -> tuple[str, str]:
    """With auth off: IAM user `user` in `account` with an allow-all inline policy and an access
    key (the existing one when it is still the user's, else a new one)."""
    iam = moto.client("iam", "bootstrap", "bootstrap", account=account)
    try:
        iam.get_user(UserName=user)
    except iam.exceptions.NoSuchEntityException:
        iam.create_user(UserName=user)
        log(f"iam user {user} ({account}): created")
    iam.put_user_policy(
        UserName=user,
        PolicyName=ADMIN_POLICY_NAME,
        PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }),
    )
    keys = [k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]
    if existing and existing[0] in keys:
        log(f"iam user {user} ({account}): reusing access key {existing[0]}")
        return existing
    for key_id in keys:  # secrets of older keys are unknown: replace them
        iam.delete_access_key(UserName=user, AccessKeyId=key_id)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    log(f"iam user {user} ({account}): new access key {key['AccessKeyId']}")
    return key["AccessKeyId"], key["SecretAccessKey"]


# ---------------------------------------------------------------------------------------------
# Resource handlers. Each returns the resource's attributes: {"Ref": ..., "Arn": ..., ...}.

def _warn_unhandled(logical_id: str, props: dict[str, Any], handled: set[str]) -> None:
    extra = sorted(set(props) - handled)
    if extra:
        log(f"{logical_id}: not emulated locally: {', '.join(extra)}")


def _tags(props: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": t["Key"], "Value": str(t["Value"])} for t in props.get("Tags") or []]


def _name(logical_id: str, props: dict[str, Any], key: str) -> str:
    name = props.get(key)
    if not name:
        name = f"{STACK_NAME}-{logical_id}"
        log(f"{logical_id}: no {key} in the template; using {name} locally "
            "(give it an explicit name so local and deployed names agree)")
    return name


def dynamodb_table(ctx: "Provisioner", logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
    ddb = ctx.client("dynamodb")
    name = _name(logical_id, props, "TableName")
    handled = {"TableName", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes",
               "LocalSecondaryIndexes", "BillingMode", "ProvisionedThroughput", "SSESpecification",
               "StreamSpecification", "TimeToLiveSpecification", "PointInTimeRecoverySpecification",
               "Tags", "DeletionProtectionEnabled"}
    _warn_unhandled(logical_id, props, handled)

    def index(i: dict[str, Any]) -> dict[str, Any]:
        out = {"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
        if "ProvisionedThroughput" in i:
            out["ProvisionedThroughput"] = i["ProvisionedThroughput"]
        return out

    want: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if props.get("GlobalSecondaryIndexes"):
        want["GlobalSecondaryIndexes"] = [index(i) for i in props["GlobalSecondaryIndexes"]]
    if props.get("LocalSecondaryIndexes"):
        want["LocalSecondaryIndexes"] = [index(i) for i in props["LocalSecondaryIndexes"]]
    if "ProvisionedThroughput" in props:
        want["ProvisionedThroughput"] = props["ProvisionedThroughput"]
    sse = props.get("SSESpecification")
    if sse:
        want["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled"))}
        if sse.get("SSEType"):
            want["SSESpecification"]["SSEType"] = sse["SSEType"]
        if sse.get("KMSMasterKeyId"):
            want["SSESpecification"]["KMSMasterKeyId"] = sse["KMSMasterKeyId"]
    stream = props.get("StreamSpecification")
    if stream:
        want["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    if props.get("Tags"):
        want["Tags"] = _tags(props)

    def shape(table: dict[str, Any]) -> Any:
        def norm_index(i: dict[str, Any]) -> Any:
            proj = i.get("Projection") or {}
            return (i["IndexName"],
                    tuple((k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]),
                    proj.get("ProjectionType", "ALL"),
                    tuple(sorted(proj.get("NonKeyAttributes") or [])))
        return (
            tuple((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]),
            tuple(sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"])),
            tuple(sorted(norm_index(i) for i in table.get("GlobalSecondaryIndexes") or [])),
            tuple(sorted(norm_index(i) for i in table.get("LocalSecondaryIndexes") or [])),
        )

    try:
        current = ddb.describe_table(TableName=name)["Table"]
    except ddb.exceptions.ResourceNotFoundException:
        current = None
    if current is not None and shape(current) != shape(want):
        log(f"table {name}: keys or indexes differ from the template; recreating it (local data is lost)")
        ddb.delete_table(TableName=name)
        ddb.get_waiter("table_not_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        current = None
    if current is None:
        ddb.create_table(**want)
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        log(f"table {name}: created")
    else:
        log(f"table {name}: exists")

    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        status = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        enabled = status.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
        if bool(ttl.get("Enabled")) != enabled or (enabled and status.get("AttributeName") != ttl["AttributeName"]):
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "AttributeName": ttl["AttributeName"], "Enabled": bool(ttl.get("Enabled"))})
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr:
        ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": bool(pitr.get("PointInTimeRecoveryEnabled"))})

    table = ddb.describe_table(TableName=name)["Table"]
    return {"Ref": name, "Arn": table["TableArn"], "StreamArn": table.get("LatestStreamArn")}


def s3_bucket(ctx: "Provisioner", logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
    s3 = ctx.client("s3")
    name = _name(logical_id, props, "BucketName")
    handled = {"BucketName", "BucketEncryption", "PublicAccessBlockConfiguration", "OwnershipControls",
               "VersioningConfiguration", "LifecycleConfiguration", "Tags"}
    _warn_unhandled(logical_id, props, handled)
    try:
        s3.head_bucket(Bucket=name)
        log(f"bucket {name}: exists")
    except s3.exceptions.ClientError as e:
        if e.response["ResponseMetadata"]["HTTPStatusCode"] != 404:
            raise
        kwargs: dict[str, Any] = {"Bucket": name}
        if REGION != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": REGION}
        s3.create_bucket(**kwargs)
        log(f"bucket {name}: created")

    enc = props.get("BucketEncryption")
    if enc:
        rules = []
        for rule in enc["ServerSideEncryptionConfiguration"]:
            r = {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
            if "BucketKeyEnabled" in rule:
                r["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
            rules.append(r)
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if props.get("PublicAccessBlockConfiguration"):
        s3.put_public_access_block(Bucket=name,
                                   PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
    if props.get("OwnershipControls"):
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
    if props.get("VersioningConfiguration"):
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={
            "Status": props["VersioningConfiguration"]["Status"]})
    lifecycle = props.get("LifecycleConfiguration")
    if lifecycle:
        rules = []
        for rule in lifecycle.get("Rules") or []:
            tags = [{"Key": t["Key"], "Value": t["Value"]} for t in rule.get("TagFilters") or []]
            if not tags:
                rule_filter: dict[str, Any] = {"Prefix": rule.get("Prefix", "")}
            elif len(tags) == 1 and "Prefix" not in rule:
                rule_filter = {"Tag": tags[0]}
            else:
                rule_filter = {"And": {"Prefix": rule.get("Prefix", ""), "Tags": tags}}
            r: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"], "Filter": rule_filter}
            if "AbortIncompleteMultipartUpload" in rule:
                r["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
            if "ExpirationInDays" in rule:
                r["Expiration"] = {"Days": rule["ExpirationInDays"]}
            if "NoncurrentVersionExpirationInDays" in rule:
                r["NoncurrentVersionExpiration"] = {"NoncurrentDays": rule["NoncurrentVersionExpirationInDays"]}
            rules.append(r)
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
    if props.get("Tags"):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tags(props)})

    return {"Ref": name, "Arn": f"arn:{PARTITION}:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com"}


_SQS_ATTRIBUTES = ["DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod",
                   "ReceiveMessageWaitTimeSeconds", "VisibilityTimeout", "RedrivePolicy",
                   "RedriveAllowPolicy", "SqsManagedSseEnabled", "KmsMasterKeyId",
                   "KmsDataKeyReusePeriodSeconds", "FifoQueue", "ContentBasedDeduplication",
                   "DeduplicationScope", "FifoThroughputLimit"]


def sqs_queue(ctx: "Provisioner", logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
    sqs = ctx.client("sqs")
    name = _name(logical_id, props, "QueueName")
    _warn_unhandled(logical_id, props, set(_SQS_ATTRIBUTES) | {"QueueName", "Tags"})
    attributes: dict[str, str] = {}
    for key in _SQS_ATTRIBUTES:
        if key not in props:
            continue
        value = props[key]
        if isinstance(value, (dict, list)):
            value = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, bool):
            value = "true" if value else "false"
        attributes[key] = str(value)
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        settable = {k: v for k, v in attributes.items() if k != "FifoQueue"}
        if settable:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=settable)
        log(f"queue {name}: exists")
    except sqs.exceptions.QueueDoesNotExist:
        kwargs: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
        if props.get("Tags"):
            kwargs["tags"] = {t["Key"]: t["Value"] for t in _tags(props)}
        url = sqs.create_queue(**kwargs)["QueueUrl"]
        log(f"queue {name}: created")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}


def iam_role(ctx: "Provisioner", logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
    iam = ctx.client("iam")
    name = _name(logical_id, props, "RoleName")
    path = props.get("Path", "/")
    _warn_unhandled(logical_id, props, {"RoleName", "Path", "AssumeRolePolicyDocument", "Policies",
                                        "Description", "MaxSessionDuration", "ManagedPolicyArns", "Tags"})
    trust = local_trust_policy(props["AssumeRolePolicyDocument"])
    try:
        role = iam.get_role(RoleName=name)["Role"]
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
        log(f"role {name}: exists")
    except iam.exceptions.NoSuchEntityException:
        kwargs: dict[str, Any] = {"RoleName": name, "Path": path,
                                  "AssumeRolePolicyDocument": json.dumps(trust)}
        if props.get("Description"):
            kwargs["Description"] = props["Description"]
        if props.get("MaxSessionDuration"):
            kwargs["MaxSessionDuration"] = int(props["MaxSessionDuration"])
        if props.get("Tags"):
            kwargs["Tags"] = _tags(props)
        role = iam.create_role(**kwargs)["Role"]
        log(f"role {name}: created")
    wanted = {p["PolicyName"]: p["PolicyDocument"] for p in props.get("Policies") or []}
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        if policy_name not in wanted:
            iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
    for policy_name, document in wanted.items():
        iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document))
    for arn in props.get("ManagedPolicyArns") or []:
        try:
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        except iam.exceptions.ClientError as e:
            log(f"role {name}: could not attach {arn} locally ({e.response['Error'].get('Code')})")
    return {"Ref": name, "Arn": role["Arn"], "RoleId": role["RoleId"]}


def local_trust_policy(template_trust: dict[str, Any]) -> dict[str, Any]:
    """The template's trust policy rewritten for moto.

    Locally every function runs with the local-admin user's key, not with a SAM execution role,
    and moto matches trust principals only by the caller's exact ARN or "*" (an account root
    principal such as arn:aws:iam::ACCOUNT:root is refused, and a statement naming any other
    principal denies the call outright). So the role trusts local-admin for the same actions.
    """
    actions: list[str] = []
    for statement in _as_list(template_trust.get("Statement")):
        if statement.get("Effect") == "Allow":
            for action in _as_list(statement.get("Action")):
                if action not in actions:
                    actions.append(action)
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "LocalStackCaller",
            "Effect": "Allow",
            "Principal": {"AWS": ADMIN_ARN},
            "Action": actions or ["sts:AssumeRole"],
        }],
    }


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


HANDLERS: dict[str, Callable[["Provisioner", str, dict[str, Any]], dict[str, Any]]] = {
    "AWS::DynamoDB::Table": dynamodb_table,
    "AWS::S3::Bucket": s3_bucket,
    "AWS::SQS::Queue": sqs_queue,
    "AWS::IAM::Role": iam_role,
}


# ---------------------------------------------------------------------------------------------

class Provisioner:
    def __init__(self, template: dict[str, Any], params: dict[str, Any], moto: Moto,
                 keys: tuple[str, str]):
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources") or {}
        self.moto = moto
        self.keys = keys
        self.created: dict[str, dict[str, Any]] = {}
        self.resolver = Resolver(template, params, self.attr)

    def client(self, service: str):
        return self.moto.client(service, *self.keys)

    def attr(self, logical_id: str, attribute: str | None) -> Any:
        if logical_id not in self.created:
            self.provision(logical_id)
        attrs = self.created[logical_id]
        key = attribute or "Ref"
        if attrs.get(key) is None:
            raise ProvisionError(f"{logical_id}.{key} is not available locally")
        return attrs[key]

    def provision(self, logical_id: str, stack: tuple[str, ...] = ()) -> None:
        if logical_id in self.created:
            return
        if logical_id in stack:
            raise ProvisionError(f"reference cycle: {' -> '.join(stack + (logical_id,))}")
        res = self.resources[logical_id]
        rtype = res.get("Type")
        handler = HANDLERS.get(rtype)
        if handler is None:
            raise ProvisionError(
                f"{logical_id} ({rtype}) is referenced from a function environment variable but "
                f"scripts/provision.py cannot create it locally; add a handler for {rtype}")
        # Resources this one references come first (e.g. a queue's dead-letter queue).
        for dep in sorted(references(res.get("Properties") or {}, set(self.resources))):
            self.provision(dep, stack + (logical_id,))
        props = self.resolver.resolve(res.get("Properties") or {})
        try:
            self.created[logical_id] = handler(self, logical_id, props)
        except ProvisionError:
            raise
        except Exception as e:  # botocore errors: name the resource, keep the service's message
            raise ProvisionError(f"{logical_id} ({rtype}): {type(e).__name__}: {e}") from e


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./:@%+=,*-]*$")


def write_env_file(path: Path, values: dict[str, str]) -> None:
    lines = ["# Written by scripts/provision.py (scripts/local-stack up). Do not edit: it is rewritten.",
             f"# Load into a shell with: set -a; . {path}; set +a"]
    for key, value in values.items():
        if not _SAFE_VALUE.match(value):
            if "'" in value or "\n" in value:
                raise ProvisionError(f"{key}: value cannot be written to the env file: {value!r}")
            value = f"'{value}'"
        lines.append(f"{key}={value}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".env.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def parameter_values(template: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        if "Default" in spec:
            params[name] = spec["Default"]
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ProvisionError(f"--param expects Name=Value, got {item!r}")
        params[key] = value
    # Parameters without a default still need a value for the resolver; give a placeholder
    # that says so (they only matter when a function variable or a provisioned resource uses one).
    for name in (template.get("Parameters") or {}):
        params.setdefault(name, f"local-{name}")
    return params


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", type=Path, required=True)
    ap.add_argument("--endpoint", help="moto URL, e.g. http://127.0.0.1:4566")
    ap.add_argument("--lambda-endpoint", help="cargo lambda watch URL, e.g. http://127.0.0.1:9000")
    ap.add_argument("--env-file", type=Path)
    ap.add_argument("--event-sources-file", type=Path,
                    help="write the SQS event source mappings and schedules here (for scripts/poller.py)")
    ap.add_argument("--param", action="append", default=[], help="Name=Value parameter override")
    ap.add_argument("--iam", choices=["on", "off"], default=os.environ.get("LOCAL_STACK_IAM", "on"))
    ap.add_argument("--check-refs", action="store_true",
                    help="only report undefined Ref/GetAtt/Sub names in the template, then exit")
    args = ap.parse_args()

    template = load_template(args.template)
    problems = check_refs(template)
    if args.check_refs:
        for p in problems:
            print(f"{args.template.name}: {p}")
        if not problems:
            print(f"{args.template.name}: every Ref, GetAtt and Sub variable names a parameter or resource")
        return 1 if problems else 0
    if problems:
        raise ProvisionError("template has undefined references:\n  " + "\n  ".join(problems))
    if not (args.endpoint and args.lambda_endpoint and args.env_file):
        ap.error("--endpoint, --lambda-endpoint and --env-file are required to provision")

    moto = Moto(args.endpoint)
    previous = read_env_file(args.env_file)
    existing = customer_existing = None
    if previous.get("AWS_ACCESS_KEY_ID") and previous.get("AWS_SECRET_ACCESS_KEY"):
        existing = (previous["AWS_ACCESS_KEY_ID"], previous["AWS_SECRET_ACCESS_KEY"])
    if previous.get("CUSTOMER_AWS_ACCESS_KEY_ID") and previous.get("CUSTOMER_AWS_SECRET_ACCESS_KEY"):
        customer_existing = (previous["CUSTOMER_AWS_ACCESS_KEY_ID"], previous["CUSTOMER_AWS_SECRET_ACCESS_KEY"])
    customer_arn = f"arn:{PARTITION}:iam::{CUSTOMER_ACCOUNT_ID}:user/{CUSTOMER_ADMIN_USER}"

    # 1. Admin credentials for our account and for the stand-in customer account.
    enforced = moto.auth_enforced()
    keys: tuple[str, str] | None = None
    customer_keys: tuple[str, str] | None = None
    if enforced:
        if (existing and moto.caller(*existing) == ADMIN_ARN
                and customer_existing and moto.caller(*customer_existing) == customer_arn):
            keys, customer_keys = existing, customer_existing
            log(f"auth is on; using the keys from {args.env_file}")
        else:
            log("auth is on but the env file's keys are missing or refused (server restarted or "
                "reset?); switching enforcement off to recreate them")
            moto.reset_auth("inf")
            enforced = False
    if keys is None or customer_keys is None:
        keys = ensure_admin_user(moto, ACCOUNT_ID, ADMIN_USER, existing)
        customer_keys = ensure_admin_user(moto, CUSTOMER_ACCOUNT_ID, CUSTOMER_ADMIN_USER, customer_existing)

    # 2. Resources the functions point at.
    params = parameter_values(template, args.param)
    prov = Provisioner(template, params, moto, keys)
    envs = function_environments(template)
    if not envs:
        raise ProvisionError("no AWS::Serverless::Function in the template")
    resource_names = set(prov.resources)
    for fn_env in envs.values():
        for dep in sorted(references(fn_env, resource_names)):
            prov.provision(dep)
    sources = event_sources(template, prov)
    if args.event_sources_file:
        write_json_file(args.event_sources_file, sources)
        log(f"wrote {args.event_sources_file} ({len(sources['queues'])} queue mappings, "
            f"{len(sources['schedules'])} schedules)")

    # 3. The env file: local endpoints and keys, then every function variable resolved.
    values: dict[str, str] = {
        "AWS_ENDPOINT_URL": args.endpoint,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": keys[0],
        "AWS_SECRET_ACCESS_KEY": keys[1],
        "LAMBDA_ENDPOINT_URL": args.lambda_endpoint,
        "LOCAL_STACK_ACCOUNT_ID": ACCOUNT_ID,
        # Stand-in customer account: create customers' roles and buckets with these keys.
        "CUSTOMER_ACCOUNT_ID": CUSTOMER_ACCOUNT_ID,
        "CUSTOMER_AWS_ACCESS_KEY_ID": customer_keys[0],
        "CUSTOMER_AWS_SECRET_ACCESS_KEY": customer_keys[1],
        "LOCAL_STACK_NAME": STACK_NAME,
        # Not LOCAL_STACK_IAM: sourcing this file must not change how the next `up` behaves.
        "LOCAL_STACK_IAM_ENFORCED": "true" if args.iam == "on" else "false",
    }
    fn_values: dict[str, tuple[str, str]] = {}
    for fn, env in envs.items():
        for key, raw in env.items():
            value = prov.resolver.resolve(raw)
            if value is NO_VALUE:
                continue
            value = str(value)
            if key in fn_values and fn_values[key][1] != value:
                raise ProvisionError(
                    f"{key} is {fn_values[key][1]!r} for {fn_values[key][0]} but {value!r} for {fn}; "
                    "the local functions share one env file")
            if key in values and key not in fn_values:
                raise ProvisionError(f"function variable {key} clashes with a local-stack variable")
            fn_values[key] = (fn, value)
            values[key] = value
    # The principal customers trust is, locally, the identity the functions run as: moto
    # matches trust-policy principals by the caller's exact ARN, so a role ARN (which in AWS
    # also covers its sessions) would never match the local functions' calls. The role the
    # template names is still created and stays reachable under CONNECTOR_ACCESS_ROLE_ARN.
    if "CONNECTOR_PRINCIPAL_ARN" in values:
        values["CONNECTOR_ACCESS_ROLE_ARN"] = values["CONNECTOR_PRINCIPAL_ARN"]
    values["CONNECTOR_PRINCIPAL_ARN"] = ADMIN_ARN
    # moto keeps every resource in one account, so locally the customers' roles, users and
    # buckets share the platform's account. The platform's account is therefore given as one
    # that holds nothing here; the lake is still refused by name (docs/local-stack.md).
    if "PLATFORM_ACCOUNT_ID" in values:
        values["PLATFORM_ACCOUNT_ID"] = LOCAL_PLATFORM_ACCOUNT_ID
    write_env_file(args.env_file, values)
    log(f"wrote {args.env_file} ({len(values)} variables)")

    # 4. IAM enforcement.
    if args.iam == "on":
        if not enforced:
            moto.reset_auth("0")
        if moto.caller("AKIAUNKNOWNPROBE0000", "not-a-secret") is not None:
            raise ProvisionError("IAM enforcement did not take effect: an unknown key was accepted")
        if moto.caller(*keys) != ADMIN_ARN:
            raise ProvisionError("IAM enforcement is on but the admin key is refused")
        if moto.caller(*customer_keys) != customer_arn:
            raise ProvisionError("IAM enforcement is on but the customer-admin key is refused")
        log("IAM enforcement: on (unknown keys are refused)")
    else:
        moto.reset_auth("inf")
        log("IAM enforcement: off (LOCAL_STACK_IAM=off)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ProvisionError as e:
        log(f"error: {e}")
        sys.exit(1)
    except urllib.error.URLError as e:
        log(f"error: cannot reach the local AWS server: {e}")
        sys.exit(1)
