"""Read the deploy files the way the tools that run them do, without a cloud account.

Databricks: `databricks.yml` plus its `include:` files, loaded and merged as the Databricks CLI
does (bundle/config/loader, libs/dyn/merge), checked against the CLI's bundle JSON schema.
EMR: `steps.json` turned into the API request by the AWS CLI's own step parser, checked against
botocore's EMR service model. Shared by tests/test_deploy.py and tests/test_deploy_platforms.py.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BUNDLE_DIR = REPO / "deploy" / "databricks"
EMR_DIR = REPO / "deploy" / "emr"
SHARED_DATA = Path(os.environ.get("WEBSCALE_SHARED_DATA", REPO.parent / "shared" / "data"))
BUNDLE_SCHEMA = SHARED_DATA / "deploy_schemas" / "databricks_bundle.schema.json"
BUNDLE_FILE_NAMES = ("databricks.yml", "databricks.yaml", "bundle.yml", "bundle.yaml")

# ------------------------------------------------------------------------------ Databricks


class GoYamlLoader(yaml.SafeLoader):
    """YAML as the CLI's Go loader (yaml.v3) reads it: only true/false are booleans.

    PyYAML follows YAML 1.1, where `on`, `off`, `yes`, `no` are booleans too; the CLI keeps them
    as strings, so reading them as booleans here would check something the CLI never sees."""


GoYamlLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
GoYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(path: Path) -> dict:
    data = yaml.load(path.read_text(), Loader=GoYamlLoader) or {}
    bad_keys = []

    def walk(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, str):  # the CLI rejects a non-string key ("invalid key tag")
                    bad_keys.append(f"{where}.{k}")
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(data, path.name)
    if bad_keys:
        raise ValueError(f"{path}: keys that are not strings: {bad_keys}")
    return data


def merge(a, b):
    """The CLI's merge of two configuration trees: maps merge key by key (b wins), sequences
    concatenate, a scalar from b replaces a's, null on either side yields the other."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict):
        if not isinstance(b, dict):
            raise ValueError(f"cannot merge map with {type(b).__name__}")
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if k in out else v
        return out
    if isinstance(a, list):
        if not isinstance(b, list):
            raise ValueError(f"cannot merge sequence with {type(b).__name__}")
        return a + b
    if isinstance(b, dict | list) or type(a) is not type(b):  # Go kinds: no int/str mixing
        raise ValueError(f"cannot merge {type(a).__name__} with {type(b).__name__}")
    return b


def include_files(root: dict, root_dir: Path) -> list[Path]:
    """The files `include:` names, in the CLI's order: glob by glob, each glob's matches sorted,
    a file matched twice loaded once, the bundle's own file never again."""
    seen = set(BUNDLE_FILE_NAMES)
    files = []
    for entry in root.get("include") or []:
        if Path(entry).is_absolute():
            raise ValueError(f"{entry}: includes must be relative paths")
        matches = sorted(p.relative_to(root_dir).as_posix() for p in root_dir.glob(entry))
        if not matches and not any(c in entry for c in "*?["):
            raise ValueError(f"{entry} defined in 'include' section does not match any files")
        for rel in matches:
            if rel in seen:
                continue
            seen.add(rel)
            if Path(rel).suffix not in (".yml", ".yaml", ".json"):
                raise ValueError(f"include {rel}: only YAML or JSON files can be included")
            files.append(root_dir / rel)
    return files


def load_bundle(root_dir: Path = BUNDLE_DIR) -> dict:
    """databricks.yml merged with its include files, as the CLI loads a bundle."""
    root = load_yaml(root_dir / "databricks.yml")
    for path in include_files(root, root_dir):
        part = load_yaml(path)
        if part.get("include"):
            # The CLI only warns and ignores it; here it is a mistake worth failing on.
            raise ValueError(f"{path}: include is only applied in databricks.yml")
        # The CLI refuses one resource key defined in two files.
        for kind, items in (part.get("resources") or {}).items():
            clash = set(items or {}) & set((root.get("resources") or {}).get(kind) or {})
            if clash:
                raise ValueError(f"{path}: resources.{kind} {sorted(clash)} defined twice")
        root = merge(root, part)
    return root


def bundle_validator(schema: dict):
    """A jsonschema validator for the CLI's bundle schema.

    The schema's patterns are Go regular expressions using \\p{L} (letter) and \\p{N} (number),
    which Python's `re` cannot compile; the `regex` package reads them with the same meaning.
    Both the `pattern` keyword and the meta-schema's `regex` format use it."""
    import regex
    from jsonschema import Draft202012Validator, FormatChecker, validators
    from jsonschema.exceptions import ValidationError

    def pattern(validator, patrn, instance, schema):
        if validator.is_type(instance, "string") and not regex.search(patrn, instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    formats = FormatChecker()
    formats.checks("regex", raises=regex.error)(lambda p: bool(regex.compile(p)))
    validator_class = validators.extend(Draft202012Validator, {"pattern": pattern})
    validator_class.check_schema(schema, format_checker=formats)
    return validator_class(schema, format_checker=formats)


def schema_errors(validator, document: dict) -> list[str]:
    """Each error as `$.path: message`, taken down into the alternative of a oneOf/anyOf that got
    deepest, so the message names the field that is wrong, not the whole resource. (Most fields
    are `oneOf: [the value, a ${var...} string]`: the branch that went deepest is the one meant.)"""

    def leaves(error):
        if not error.context:
            return [error]
        branches: dict = {}
        for e in error.context:
            branches.setdefault(e.relative_schema_path[0], []).append(e)
        best = max(
            branches.values(),
            key=lambda errs: max((len(e.absolute_path), e.validator != "type") for e in errs),
        )
        return [leaf for e in best for leaf in leaves(e)]

    return [
        f"{leaf.json_path}: {leaf.message[:300]}"
        for error in validator.iter_errors(document)
        for leaf in leaves(error)
    ]


def load_bundle_schema() -> dict:
    return json.loads(BUNDLE_SCHEMA.read_text())


# ------------------------------------------------------------------------------------- EMR


def emr_steps() -> list[dict]:
    return json.loads((EMR_DIR / "steps.json").read_text())


def emr_configurations() -> list[dict]:
    return json.loads((EMR_DIR / "configurations.json").read_text())


def emr_model():
    """botocore's EMR service model; the AWS CLI ships its own copy of botocore (newer releases
    under awscli.botocore, older ones as the separate botocore package)."""
    try:
        from awscli.botocore.session import get_session
    except ImportError:
        from botocore.session import get_session
    return get_session().get_service_model("emr")


def emr_step_requests(steps: list[dict]) -> list[dict]:
    """`--steps file://steps.json` as `aws emr add-steps` / `create-cluster` send it."""
    from awscli.customizations.emr.steputils import build_step_config_list

    # Region and release label matter only for Hive/Pig/Impala/Spark step types, not CUSTOM_JAR.
    return build_step_config_list(steps, region="us-east-1", release_label="emr-7.9.0")


def emr_request_errors(operation: str, params: dict) -> list[str]:
    """What botocore would reject before sending `operation`, plus what ParamValidator leaves to
    the server: enum values and maximum lengths from the model."""
    try:
        from awscli.botocore.validate import ParamValidator
    except ImportError:
        from botocore.validate import ParamValidator

    shape = emr_model().operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    errors = [report.generate_report()] if report.has_errors() else []
    return errors + model_constraint_errors(shape, params, operation)


def model_constraint_errors(shape, value, where: str) -> list[str]:
    out = []
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                out += model_constraint_errors(member, value[name], f"{where}.{name}")
    elif kind == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            out += model_constraint_errors(shape.member, item, f"{where}[{i}]")
    elif kind == "map" and isinstance(value, dict):
        for k, v in value.items():
            out += model_constraint_errors(shape.key, k, f"{where} key {k!r}")
            out += model_constraint_errors(shape.value, v, f"{where}.{k}")
    elif kind == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            out.append(f"{where}: {value!r} is not one of {shape.enum}")
        limit = shape.metadata.get("max")
        if limit is not None and len(value) > limit:
            out.append(f"{where}: {len(value)} characters, the model allows {limit}")
    return out


def substitute(bundle: dict, value, target: str = "dev") -> str:
    """Resolve ${var.x}, ${bundle.target} and {{job.parameters.x}} as a deploy and a run of the
    bundle's one job would, with the target's variable values and the parameters' defaults."""
    variables = {k: v.get("default") for k, v in bundle["variables"].items()}
    variables.update(bundle["targets"][target].get("variables") or {})
    (job,) = bundle["resources"]["jobs"].values()
    params = {p["name"]: p["default"] for p in job.get("parameters", [])}

    def var(m):
        assert m.group(1) in variables, f"undefined bundle variable {m.group(1)}"
        return str(variables[m.group(1)])

    def param(m):
        assert m.group(1) in params, f"undefined job parameter {m.group(1)}"
        return str(params[m.group(1)])

    value = re.sub(r"\$\{var\.([a-z_]+)\}", var, str(value))
    value = value.replace("${bundle.target}", target)
    return re.sub(r"\{\{\s*job\.parameters\.([a-z_]+)\s*\}\}", param, value)
