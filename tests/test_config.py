import pytest

from webscale_rl.config import flatten, load_config, parse_override, to_yaml
from webscale_rl.errors import ConfigError


def test_defaults_are_valid_and_documented():
    from webscale_rl.config import Config

    cfg = load_config()
    assert cfg.lakehouse == "./lakehouse"

    def undocumented(model, prefix=""):
        missing = []
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                missing += undocumented(ann, f"{prefix}{name}.")
            elif not field.description and name not in ("run_id",):
                missing.append(prefix + name)
        return missing

    assert undocumented(Config) == []


def test_yaml_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("seed: 3\nspark:\n  shuffle_partitions: 5\n")
    cfg = load_config(f, ["spark.shuffle_partitions=7", "ingest.format=wet"], lakehouse="/x")
    assert (cfg.seed, cfg.spark.shuffle_partitions, cfg.ingest.format, cfg.lakehouse) == (
        3,
        7,
        "wet",
        "/x",
    )


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="unknown config key 'spark.shuffle_partition'"):
        load_config(overrides=["spark.shuffle_partition=3"])


def test_bad_value_is_named():
    with pytest.raises(ConfigError, match="ingest.format"):
        load_config(overrides=["ingest.format=pdf"])


@pytest.mark.parametrize("name", ["docs; DROP TABLE x", "a-b", "1abc", "a.b", "a`b"])
def test_unsafe_table_names_rejected(name):
    with pytest.raises(ConfigError, match="tables.documents"):
        load_config(overrides=[f"tables.documents={name!r}"])


def test_override_parsing():
    assert parse_override("a.b=3") == ("a.b", 3)
    assert parse_override("a=[x, y]") == ("a", ["x", "y"])
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")


def test_flatten_redacts_secret_like_keys():
    cfg = load_config(overrides=["spark.conf={'fs.s3a.secret.key': 'hunter2', 'spark.x': 'y'}"])
    flat = flatten(cfg)
    assert "hunter2" not in str(flat)
    assert flat["spark.conf.spark.x"] == "y"
    assert "hunter2" not in to_yaml(cfg)
