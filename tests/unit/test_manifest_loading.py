"""Loading the YAML manifests: every field's happy path, every error kind, the RBAC rule
(`allowed`), and the shipped examples in `config/examples/` meaning what their comments say."""

from __future__ import annotations

import hashlib
import re
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from registry.auth.rbac import allowed, role_allows
from registry.config.manifests import load_manifests, manifest_files
from registry.config.model import (
    Manifests,
    Role,
    RoleBinding,
    Subject,
    User,
)
from registry.config.settings import ConfigError, ConfigErrors

V1 = "simple-registry.dev/v1"
SEED = "simple-registry.jlsalvador.online/v1beta1"
HASH = "$2b$10$" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY./"[:53]
SHA = hashlib.sha256(b"robot-token").hexdigest()
EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"


def doc(kind: str, name: str, spec: str | None = None, api: str = V1) -> str:
    """One manifest; `spec` is the YAML body of `spec:` (dedented)."""
    lines = [f"apiVersion: {api}", f"kind: {kind}", "metadata:", f"  name: {name}"]
    if spec is not None:
        lines.append("spec:")
        lines += ["  " + line for line in textwrap.dedent(spec).strip("\n").splitlines()]
    return "\n".join(lines) + "\n"


def write(directory: Path, name: str, *docs: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("---\n".join(docs), encoding="utf-8")
    return path


def load(tmp_path: Path, *docs: str, env: dict[str, str] | None = None) -> Manifests:
    write(tmp_path / "cfg", "m.yaml", *docs)
    return load_manifests([tmp_path / "cfg"], env or {})


def error(
    tmp_path: Path,
    *docs: str,
    document: int,
    field: str,
    fragment: str,
    env: dict[str, str] | None = None,
) -> str:
    """Load `docs` as one file; the error must name the file, the document and the field."""
    path = write(tmp_path / "cfg", "m.yaml", *docs)
    with pytest.raises(ConfigError) as caught:
        load_manifests([tmp_path / "cfg"], env or {})
    message = str(caught.value)
    assert message.startswith(f"{path}, document {document}"), message
    assert f": {field}: " in message, message
    assert fragment in message, message
    assert "\n" not in message
    return message


USER = doc("User", "alice", "groups: [admins]")
ROLE = doc("Role", "all", 'resources: ["*"]\nverbs: ["*"]')


def binding(name: str = "b", scopes: str = '["^.*$"]', role: str = "all") -> str:
    return doc(
        "RoleBinding",
        name,
        f"subjects: [{{kind: Group, name: admins}}]\nroleRef: {{name: {role}}}\nscopes: {scopes}",
    )


# --------------------------------------------------------------------------- loading rules


def test_folders_in_order_files_in_lexical_order_not_recursive(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    write(first, "b.yml", doc("User", "u-b"))
    write(first, "A.YAML", doc("User", "u-a"))  # case-insensitive suffix; "A" < "b"
    write(first, "c.json", doc("User", "ignored-json"))
    write(first, "notes.txt", "not yaml at all: [")
    write(first / "sub.yaml", "deep.yaml", doc("User", "ignored-deep"))
    write(second, "a.yaml", doc("User", "u-second"))
    manifests = load_manifests([second, first], {})
    assert [u.name for u in manifests.users] == ["u-second", "u-a", "u-b"]
    assert manifest_files([first]) == [first / "A.YAML", first / "b.yml"]


def test_multi_document_files_skip_empty_documents_but_count_them(tmp_path: Path) -> None:
    path = write(tmp_path / "cfg", "m.yaml", USER, "# only a comment\n", "", doc("User", "bob"))
    manifests = load_manifests([tmp_path / "cfg"], {})
    assert [u.name for u in manifests.users] == ["alice", "bob"]
    bob = manifests.users[1]
    assert bob.source is not None
    assert (bob.source.file, bob.source.document) == (path, 4)


def test_no_folders_is_an_empty_configuration() -> None:
    assert load_manifests([], {}) == Manifests()


def test_missing_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'nope'}: no such directory")):
        load_manifests([tmp_path / "nope"], {})


def test_a_file_given_as_folder_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", USER)
    with pytest.raises(ConfigError, match="not a directory"):
        load_manifests([path], {})


def test_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "gone.yaml").symlink_to(tmp_path / "missing-target")
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'cfg' / 'gone.yaml'}: cannot")):
        load_manifests([tmp_path / "cfg"], {})


def test_malformed_yaml_names_file_document_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "cfg", "m.yaml", USER, "kind: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_manifests([tmp_path / "cfg"], {})
    message = str(caught.value)
    assert message.startswith(f"{path}, document 2: malformed YAML")
    assert "line " in message


def test_duplicate_keys_are_malformed(tmp_path: Path) -> None:
    path = write(tmp_path / "cfg", "m.yaml", USER + "kind: User\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}, document 1: malformed YAML: dup")):
        load_manifests([tmp_path / "cfg"], {})


def test_not_utf8_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "m.yaml").write_bytes(b"kind: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_manifests([tmp_path / "cfg"], {})


def test_a_document_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path / "cfg", "m.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}, document 1: expected a manifest")):
        load_manifests([tmp_path / "cfg"], {})


@pytest.mark.parametrize("api", [V1, SEED])
def test_both_api_versions_have_every_kind(tmp_path: Path, api: str) -> None:
    manifests = load(
        tmp_path,
        doc("Configuration", "c", "dataDir: /d", api),
        doc("User", "alice", "groups: [admins]", api),
        doc("Role", "all", 'resources: ["*"]\nverbs: ["*"]', api),
        doc(
            "RoleBinding",
            "b",
            'subjects: [{kind: User, name: alice}]\nroleRef: {name: all}\nscopes: ["x"]',
            api,
        ),
        doc("PullThroughCache", "p", "upstream: {url: 'http://u'}\nscopes: ['^p/']", api),
        doc("Token", "t", f"username: alice\nvalueSha256: {SHA}", api),
    )
    assert manifests.configuration.data_dir == "/d"
    assert [len(manifests.users), len(manifests.roles), len(manifests.bindings)] == [1, 1, 1]
    assert [len(manifests.caches), len(manifests.tokens)] == [1, 1]


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        ("kind: User\nmetadata: {name: a}\n", "apiVersion", "required field is missing"),
        ("apiVersion: v1\nkind: User\nmetadata: {name: a}\n", "apiVersion", "unknown apiVersion"),
        (f"apiVersion: {V1}\nmetadata: {{name: a}}\n", "kind", "required field is missing"),
        (f"apiVersion: {V1}\nkind: Group\nmetadata: {{name: a}}\n", "kind", "unknown kind 'Group'"),
        (f"apiVersion: {V1}\nkind: User\n", "metadata.name", "required field is missing"),
        (f"apiVersion: {V1}\nkind: User\nmetadata: {{}}\n", "metadata.name", "required field"),
        (f"apiVersion: {V1}\nkind: User\nmetadata: {{name: ''}}\n", "metadata.name", "empty"),
        (f"apiVersion: {V1}\nkind: User\nmetadata: {{name: 42}}\n", "metadata.name", "quote it"),
        (f"apiVersion: {V1}\nkind: User\nmetadata: a\n", "metadata", "expected a mapping"),
        (
            f"apiVersion: {V1}\nkind: User\nmetadata: {{name: a, labels: {{}}}}\n",
            "metadata.labels",
            "unknown field",
        ),
        (
            f"apiVersion: {V1}\nkind: User\nmetadata: {{name: a}}\nstatus: {{}}\n",
            "status",
            "unknown field",
        ),
    ],
)
def test_header_errors(tmp_path: Path, text: str, field: str, fragment: str) -> None:
    error(tmp_path, USER, text, document=2, field=field, fragment=fragment)


def test_error_names_the_manifest(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        USER,
        doc("User", "bob", "groups: admins"),
        document=2,
        field="spec.groups",
        fragment="expected a list of strings, got a string",
    )
    assert '(User "bob")' in message


def test_duplicate_names_within_a_kind_name_both_places(tmp_path: Path) -> None:
    first = write(tmp_path / "cfg", "a.yaml", USER)
    second = write(
        tmp_path / "cfg", "b.yaml", doc("Role", "alice", "resources: [tags]\nverbs: [GET]"), USER
    )
    with pytest.raises(ConfigError) as caught:
        load_manifests([tmp_path / "cfg"], {})
    message = str(caught.value)
    assert message.startswith(f'{second}, document 2 (User "alice"): metadata.name: duplicate')
    assert f"first defined in {first}, document 1" in message


def test_the_same_folder_twice_duplicates_everything(tmp_path: Path) -> None:
    write(tmp_path / "cfg", "a.yaml", USER)
    with pytest.raises(ConfigError, match="duplicate User"):
        load_manifests([tmp_path / "cfg", tmp_path / "cfg"], {})


def test_the_gc_section_is_checked_like_every_section(tmp_path: Path) -> None:
    spec = "gc: {schedule: daily, grace: soon, untagged: 1}"
    path = write(tmp_path / "cfg", "m.yaml", doc("Configuration", "main", spec), USER)
    with pytest.raises(ConfigErrors) as raised:
        load_manifests([tmp_path / "cfg"], {})
    where = f'{path}, document 1 (Configuration "main"): spec.gc.'
    messages = "\n".join(raised.value.messages)
    assert f"{where}schedule: unknown field" in messages
    assert f"{where}grace: " in messages and "'soon'" in messages
    assert f"{where}untagged: " in messages


# --------------------------------------------------------------------------- settings left unused


def test_the_seeds_proxy_section_is_a_warning(tmp_path: Path) -> None:
    """Accepted (so that manifests written for the seed load), but never silently: one
    warning, naming the file and what is ignored; `web.ui` is built and says nothing."""
    spec = "web: {ui: true}\nproxy: {anything: 1}"
    cache = doc("PullThroughCache", "hub", "upstream: {url: 'https://up.example'}\nscopes: [x]")
    path = write(tmp_path / "cfg", "m.yaml", doc("Configuration", "main", spec), USER, cache)
    where = f'{path}, document 1 (Configuration "main"): spec.'
    assert load_manifests([tmp_path / "cfg"], {}).warnings == (
        f"{where}proxy: the pull-through cache is configured by PullThroughCache manifests "
        "(docs/pull-through-cache.md); this section is ignored",
    )  # the PullThroughCache itself is built: it loads without a word


def test_a_web_field_set_to_null_is_not_given(tmp_path: Path) -> None:
    manifests = load(
        tmp_path,
        doc("Configuration", "a", "web: {addr: ':1', tokenTimeout: 90}"),
        doc("Configuration", "b", "web: {addr: null, tokenTimeout: null, service: null}"),
    )
    web = manifests.configuration.web
    assert (web.addr, web.token_timeout_seconds, web.service) == (":1", 90, None)


def test_the_web_ui_turned_off_is_no_warning(tmp_path: Path) -> None:
    manifests = load(tmp_path, doc("Configuration", "main", "web: {ui: false}"), USER)
    assert manifests.warnings == ()


# --------------------------------------------------------------------------- every mistake at once


def _all_errors(*dirs: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigErrors) as caught:
        load_manifests(list(dirs), {})
    assert str(caught.value) == "\n".join(caught.value.messages)
    return caught.value.messages


def test_three_independent_errors_in_three_places_are_all_reported(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    users = write(cfg, "a.yaml", USER, doc("User", "bob", "groups: admins"))
    roles = write(cfg, "b.yaml", doc("Role", "reader", "resources: [tags, blob]\nverbs: [GET]"))
    config = write(cfg, "c.yaml", doc("Configuration", "main", "web: {adr: '0.0.0.0:5000'}"))
    assert _all_errors(cfg) == (
        f'{users}, document 2 (User "bob"): spec.groups: expected a list of strings, got a string',
        f'{roles}, document 1 (Role "reader"): spec.resources[1]: unknown resource '
        "'blob' (expected blobs, catalog, manifests, tags or *)",
        f'{config}, document 1 (Configuration "main"): spec.web.adr: unknown field '
        "(did you mean 'addr'?)",
    )


def test_every_folder_file_field_and_reference_is_reported(tmp_path: Path) -> None:
    """Unknown fields do not stop a document; a YAML syntax error stops only its own file; a
    missing folder does not stop the others."""
    cfg, missing = tmp_path / "cfg", tmp_path / "missing"
    config = write(
        cfg, "a.yaml", doc("Configuration", "main", "web: {adr: ':5000', tokenTimeout: 5}")
    )
    broken = write(cfg, "b.yaml", doc("Token", "t", f"username: nobody\nvalueSha256: {SHA}"))
    broken.write_text(broken.read_text() + "---\nkind: [unclosed\n")
    later = write(cfg, "c.yaml", USER, binding(role="missing"))
    messages = _all_errors(cfg, missing)
    assert [m.split(": ")[0] for m in messages] == [
        f"config directory {missing}",
        f'{config}, document 1 (Configuration "main")',
        f'{config}, document 1 (Configuration "main")',
        f"{broken}, document 2",
        # References are checked once every manifest is read.
        f'{later}, document 2 (RoleBinding "b")',
        f'{broken}, document 1 (Token "t")',
    ]
    assert "spec.web.adr: unknown field (did you mean 'addr'?)" in messages[1]
    assert "spec.web.tokenTimeout: expected whole seconds >= 60" in messages[2]
    assert "malformed YAML" in messages[3]
    assert messages[4].endswith('spec.roleRef.name: no Role named "missing"')
    assert messages[5].endswith('spec.username: no User named "nobody"')


def test_every_bad_field_of_the_typed_sections_is_reported(tmp_path: Path) -> None:
    spec = (
        "storage: {s3: {bucket: b, maxAttempts: 0, pathstyle: true}, gcs: {}}\n"
        "redis: {url: 5}\nmetrics: {enabled: yes please}"
    )
    path = write(tmp_path / "cfg", "m.yaml", doc("Configuration", "main", spec))
    where = f'{path}, document 1 (Configuration "main"): spec.'
    assert _all_errors(tmp_path / "cfg") == (
        f"{where}storage.s3.maxAttempts: expected a value from 1 to 20",
        f"{where}storage.s3.pathstyle: unknown field (did you mean 'pathStyle'?)",
        f"{where}storage.gcs: unknown field (expected one of: s3)",
        f"{where}redis.url: expected a string, got an integer",
        f"{where}metrics.enabled: expected a boolean, got a string",
    )


def test_every_bad_field_of_spec_web_is_reported(tmp_path: Path) -> None:
    spec = "web: {addr: localhost, tokenTimeout: 30s, bodyTimeout: soon, tokenSecretEnv: UNSET}"
    path = write(tmp_path / "cfg", "m.yaml", doc("Configuration", "main", spec))
    where = f'{path}, document 1 (Configuration "main"): spec.web.'
    assert _all_errors(tmp_path / "cfg") == (
        f"{where}addr: expected HOST:PORT, got 'localhost'",
        f"{where}tokenTimeout: expected whole seconds >= 60 or a duration such as 5m, got '30s'",
        f"{where}bodyTimeout: expected a duration such as 30s, 10m, 1h, 30d, or whole seconds, "
        "got 'soon'",
        f"{where}tokenSecretEnv: environment variable UNSET is not set",
    )


def test_references_to_a_manifest_in_error_are_not_reported_again(tmp_path: Path) -> None:
    """The role and the user exist but are invalid: their own errors say so; "no Role named"
    and "no User named" would send the reader looking for a manifest that is there."""
    path = write(
        tmp_path / "cfg",
        "m.yaml",
        doc("Role", "all", "resources: [everything]\nverbs: [GET]"),
        doc("User", "robot", "groups: robots"),
        binding(),
        doc("Token", "t", f"username: robot\nvalueSha256: {SHA}"),
    )
    assert [m.split(": ")[0] for m in _all_errors(tmp_path / "cfg")] == [
        f'{path}, document 1 (Role "all")',
        f'{path}, document 2 (User "robot")',
    ]


# --------------------------------------------------------------------------- Configuration


def test_configuration_every_field(tmp_path: Path) -> None:
    manifests = load(
        tmp_path,
        doc(
            "Configuration",
            "main",
            """
            dataDir: /var/lib/registry
            web:
              addr: "127.0.0.1:5001"
              tokenSecret: s3cret
              tokenTimeout: 300
              ui: yes
              certfile: /tls/cert.pem
              keyfile: /tls/key.pem
              trustForwardedHeaders: true
              service: registry.example.com
            storage: {s3: {bucket: images, pathStyle: true}}
            redis: {url: "redis://r:6379/0"}
            proxy: {}
            gc: {grace: 2h}
            metrics: {enabled: true}
            """,
        ),
    )
    config = manifests.configuration
    web = config.web
    assert config.data_dir == "/var/lib/registry"
    assert (web.addr, web.token_secret, web.token_timeout_seconds) == (
        "127.0.0.1:5001",
        "s3cret",
        300,
    )
    assert (web.ui, web.trust_forwarded_headers, web.service) == (
        True,
        True,
        "registry.example.com",
    )
    assert (web.certfile, web.keyfile) == ("/tls/cert.pem", "/tls/key.pem")
    assert config.sections == {
        "storage": {"s3": {"bucket": "images", "pathStyle": True}},
        "redis": {"url": "redis://r:6379/0"},
        "proxy": {},
        "gc": {"grace": "2h"},
        "metrics": {"enabled": True},
    }


def test_configuration_without_spec_changes_nothing(tmp_path: Path) -> None:
    assert load(tmp_path, doc("Configuration", "empty")).configuration == Manifests().configuration


def test_several_configurations_merge_in_load_order(tmp_path: Path) -> None:
    write(
        tmp_path / "a",
        "1.yaml",
        doc(
            "Configuration",
            "base",
            "dataDir: /one\nweb: {addr: ':1', ui: true, tokenTimeout: 60}\n"
            "redis: {url: 'redis://r/0', keyPrefix: a}",
        ),
    )
    write(
        tmp_path / "a",
        "2.yaml",
        doc("Configuration", "base", "web: {ui: false}\nredis: {keyPrefix: b}"),
    )
    write(
        tmp_path / "b", "0.yaml", doc("Configuration", "site", "dataDir: /two\nweb: {service: s}")
    )
    config = load_manifests([tmp_path / "a", tmp_path / "b"], {}).configuration
    assert config.data_dir == "/two"  # the later document wins
    assert config.web.addr == ":1"  # not set later: kept
    assert config.web.ui is False  # false is a value, it overrides true
    assert config.web.token_timeout_seconds == 60
    assert config.web.service == "s"
    assert config.sections == {"redis": {"url": "redis://r/0", "keyPrefix": "b"}}


def test_token_secret_from_a_file_strips_one_newline(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-file\n\n")
    manifests = load(
        tmp_path, doc("Configuration", "c", f"web: {{tokenSecretFile: {tmp_path / 'secret'}}}")
    )
    assert manifests.configuration.web.token_secret == "from-file\n"


def test_token_secret_from_the_environment(tmp_path: Path) -> None:
    manifests = load(
        tmp_path,
        doc("Configuration", "c", "web: {tokenSecretEnv: MY_SECRET}"),
        env={"MY_SECRET": "from-env"},
    )
    assert manifests.configuration.web.token_secret == "from-env"


@pytest.mark.parametrize(
    ("value", "seconds"), [("60", 60), ("'90'", 90), ("2m", 120), ("1h30m", 5400), ("1d", 86400)]
)
def test_token_timeout_forms(tmp_path: Path, value: str, seconds: int) -> None:
    manifests = load(tmp_path, doc("Configuration", "c", f"web: {{tokenTimeout: {value}}}"))
    assert manifests.configuration.web.token_timeout_seconds == seconds


CONFIG_ERRORS = [
    ("http: {addr: ':5000'}", "spec.http", "renamed; call it web"),
    ("datadir: /x", "spec.datadir", "dataDir"),
    ("dataDir: 5", "spec.dataDir", "expected a string, got an integer"),
    ("web: {adr: ':1'}", "spec.web.adr", "did you mean 'addr'"),
    ("web: {certFile: c}", "spec.web.certFile", "certfile, all lower case"),
    ("web: {addr: localhost}", "spec.web.addr", "expected HOST:PORT"),
    ("web: {ui: 'yes'}", "spec.web.ui", "expected a boolean"),
    ("web: {ui: 1}", "spec.web.ui", "expected a boolean"),
    ("web: {trustForwardedHeaders: on-ish}", "spec.web.trustForwardedHeaders", "boolean"),
    ("web: {tokenTimeout: true}", "spec.web.tokenTimeout", "got a boolean"),
    ("web: {tokenTimeout: 59}", "spec.web.tokenTimeout", ">= 60"),
    ("web: {tokenTimeout: 30s}", "spec.web.tokenTimeout", ">= 60"),
    ("web: {tokenTimeout: 90.5s}", "spec.web.tokenTimeout", "whole seconds"),
    ("web: {tokenTimeout: soon}", "spec.web.tokenTimeout", "'soon'"),
    ("web: {bodyTimeout: 0}", "spec.web.bodyTimeout", "above 0"),
    ("web: {bodyTimeout: 2h}", "spec.web.bodyTimeout", "at most 3600s"),
    ("web: {bodyTimeout: soon}", "spec.web.bodyTimeout", "'soon'"),
    ("web: {tokenSecret: a, tokenSecretEnv: B}", "spec.web.tokenSecretEnv", "only one of"),
    ("web: {tokenSecretEnv: NOT_SET_ANYWHERE}", "spec.web.tokenSecretEnv", "is not set"),
    ("web: {tokenSecretFile: /nonexistent/secret}", "spec.web.tokenSecretFile", "cannot read"),
    ("web: {tokenSecret: ''}", "spec.web.tokenSecret", "must not be empty"),
    ("web: {service: [a]}", "spec.web.service", "expected a string, got a list"),
    ("web: [addr]", "spec.web", "expected a mapping"),
    ("storage: [a]", "spec.storage", "expected a mapping, got a list"),
    ("proxy: [a]", "spec.proxy", "expected a mapping, got a list"),
    ("gc: daily", "spec.gc", "expected a mapping, got a string"),
    ("web: {addr: 5000}", "spec.web.addr", "expected a string, got an integer (quote it)"),
    ("web: {1: a}", "spec.web", "keys must be strings"),
    ("storage: {1: a}", "spec.storage", "keys must be strings"),
    ("storage: {nested: {2: a}}", "spec.storage.nested", "keys must be strings"),
    ("logging: {}", "spec.logging", "unknown field"),
]


@pytest.mark.parametrize(("spec", "field", "fragment"), CONFIG_ERRORS)
def test_configuration_errors(tmp_path: Path, spec: str, field: str, fragment: str) -> None:
    error(tmp_path, doc("Configuration", "c", spec), document=1, field=field, fragment=fragment)


def test_empty_secret_file_and_variable_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    error(
        tmp_path,
        doc("Configuration", "c", f"web: {{tokenSecretFile: {tmp_path / 'empty'}}}"),
        document=1,
        field="spec.web.tokenSecretFile",
        fragment="is empty",
    )
    error(
        tmp_path,
        doc("Configuration", "c", "web: {tokenSecretEnv: E}"),
        env={"E": ""},
        document=1,
        field="spec.web.tokenSecretEnv",
        fragment="is empty",
    )


# --------------------------------------------------------------------------- User


def test_user_fields(tmp_path: Path) -> None:
    manifests = load(
        tmp_path,
        doc("User", "alice", f'passwordHash: "{HASH}"\ngroups: [admins, dev, admins]'),
        doc("User", "nobody"),
        doc("User", "robot", "groups: []"),
    )
    alice, nobody, robot = manifests.users
    assert alice == User("alice", HASH, ("admins", "dev"), alice.source)
    assert (nobody.password_hash, nobody.groups) == (None, ())
    assert robot.groups == ()


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_bcrypt_variants(tmp_path: Path, prefix: str) -> None:
    value = prefix + HASH[4:]
    assert (
        load(tmp_path, doc("User", "a", f'passwordHash: "{value}"')).users[0].password_hash == value
    )


USER_ERRORS = [
    ('passwordHash: "plain-text-password"', "spec.passwordHash", "not a bcrypt hash"),
    (f'passwordHash: "{HASH[:-1]}"', "spec.passwordHash", "not a bcrypt hash"),
    (f'passwordHash: "$2x${HASH[4:]}"', "spec.passwordHash", "not a bcrypt hash"),
    ("passwordHash: 12", "spec.passwordHash", "expected a string"),
    ("groups: admins", "spec.groups", "expected a list of strings, got a string"),
    ("groups: [admins, 3]", "spec.groups", "a list holding an integer"),
    ("groups: [yes]", "spec.groups", "a list holding a boolean"),
    ("groups: ['']", "spec.groups[0]", "must not be empty"),
    ("group: [admins]", "spec.group", "did you mean 'groups'"),
    ("password: x", "spec.password", "unknown field"),
]


@pytest.mark.parametrize(("spec", "field", "fragment"), USER_ERRORS)
def test_user_errors(tmp_path: Path, spec: str, field: str, fragment: str) -> None:
    message = error(tmp_path, doc("User", "u", spec), document=1, field=field, fragment=fragment)
    assert "plain-text-password" not in message
    assert HASH[10:] not in message


def test_password_hash_under_metadata_is_the_seed_doc_bug(tmp_path: Path) -> None:
    text = f'apiVersion: {V1}\nkind: User\nmetadata:\n  name: bob\n  passwordHash: "{HASH}"\n'
    message = error(
        tmp_path,
        text,
        document=1,
        field="metadata.passwordHash",
        fragment="belongs under spec (spec.passwordHash)",
    )
    assert '(User "bob")' in message
    assert HASH not in message


def test_user_name_with_a_colon_cannot_log_in(tmp_path: Path) -> None:
    error(tmp_path, doc("User", "'a:b'"), document=1, field="metadata.name", fragment="':'")


def test_anonymous_with_a_password_is_a_warning(tmp_path: Path) -> None:
    manifests = load(tmp_path, doc("User", "anonymous", f'passwordHash: "{HASH}"'))
    assert any("anonymous user" in w for w in manifests.warnings)


def test_no_user_is_a_warning(tmp_path: Path) -> None:
    assert any("nobody can log in" in w for w in load(tmp_path, ROLE).warnings)
    assert not any("nobody can log in" in w for w in load(tmp_path, USER).warnings)


# --------------------------------------------------------------------------- Role


def test_role_verbs_are_normalized(tmp_path: Path) -> None:
    manifests = load(
        tmp_path,
        doc(
            "Role",
            "r",
            "resources: [catalog, tags, blobs, manifests]\n"
            "verbs: [' get ', head, Post, PUT, patch, Delete, PULL, Push, delete]",
        ),
        doc("Role", "star", 'resources: ["*"]\nverbs: [" * "]'),
    )
    role, star = manifests.roles
    assert role.resources == {"catalog", "tags", "blobs", "manifests"}
    # "delete" is DELETE in any case: the HTTP verb and the action mean the same.
    assert role.verbs == {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "pull", "push"}
    assert (star.resources, star.verbs) == (frozenset({"*"}), frozenset({"*"}))


ROLE_ERRORS = [
    ("resources: [tags]\nverbs: [OPTIONS]", "spec.verbs[0]", "unknown verb 'OPTIONS'"),
    ("resources: [tags]\nverbs: [GET, TRACE]", "spec.verbs[1]", "unknown verb"),
    ("resources: [tags]\nverbs: [read]", "spec.verbs[0]", "unknown verb"),
    ("resources: [tags]\nverbs: ['*', GET]", "spec.verbs", "list it alone"),
    ("resources: [tags]\nverbs: []", "spec.verbs", "at least one"),
    ("resources: [tags]\nverbs: GET", "spec.verbs", "expected a list of strings"),
    ("resources: [tags]", "spec.verbs", "required field is missing"),
    ("resources: [tag]\nverbs: [GET]", "spec.resources[0]", "unknown resource 'tag'"),
    ("resources: [Tags]\nverbs: [GET]", "spec.resources[0]", "unknown resource"),
    ("resources: ['*', tags]\nverbs: [GET]", "spec.resources", "list it alone"),
    ("verbs: [GET]", "spec.resources", "required field is missing"),
    ("resources: [tags]\nverbs: [GET]\nrules: []", "spec.rules", "unknown field"),
]


@pytest.mark.parametrize(("spec", "field", "fragment"), ROLE_ERRORS)
def test_role_errors(tmp_path: Path, spec: str, field: str, fragment: str) -> None:
    error(tmp_path, doc("Role", "r", spec), document=1, field=field, fragment=fragment)


def test_role_without_spec_is_an_error(tmp_path: Path) -> None:
    error(tmp_path, doc("Role", "r"), document=1, field="spec", fragment="required field")


def test_role_reading_manifests_without_tags_is_a_warning(tmp_path: Path) -> None:
    manifests = load(
        tmp_path, USER, doc("Role", "ro", "resources: [blobs, manifests]\nverbs: [GET]")
    )
    assert any('Role "ro"' in w and "cannot list tags" in w for w in manifests.warnings)


# --------------------------------------------------------------------------- RoleBinding


def test_binding_fields(tmp_path: Path) -> None:
    manifests = load(
        tmp_path,
        USER,
        ROLE,
        doc(
            "RoleBinding",
            "b",
            """
            subjects:
              - {kind: User, name: alice}
              - {kind: Group, name: admins}
            roleRef: {kind: Role, name: all}
            scopes: ['^team/', '(?i)^x$']
            """,
        ),
    )
    (b,) = manifests.bindings
    assert b.subjects == (Subject("User", "alice"), Subject("Group", "admins"))
    assert b.role == "all"
    assert [s.pattern for s in b.scopes] == ["^team/", "(?i)^x$"]
    assert manifests.warnings == ()


BINDING_ERRORS = [
    (
        "subjects: [{kind: Team, name: x}]\nroleRef: {name: all}\nscopes: [a]",
        "spec.subjects[0].kind",
        "expected User or Group",
    ),
    (
        "subjects: [{kind: User}]\nroleRef: {name: all}\nscopes: [a]",
        "spec.subjects[0].name",
        "required field",
    ),
    (
        "subjects: [{kind: User, name: a, namespace: n}]\nroleRef: {name: all}\nscopes: [a]",
        "spec.subjects[0].namespace",
        "unknown field",
    ),
    ("subjects: []\nroleRef: {name: all}\nscopes: [a]", "spec.subjects", "at least one"),
    (
        "subjects: {kind: User, name: a}\nroleRef: {name: all}\nscopes: [a]",
        "spec.subjects",
        "expected a list",
    ),
    (
        "subjects: [{kind: User, name: alice}]\nroleRef: {name: nope}\nscopes: [a]",
        "spec.roleRef.name",
        'no Role named "nope"',
    ),
    (
        "subjects: [{kind: User, name: alice}]\nroleRef: {kind: ClusterRole, name: all}\n"
        "scopes: [a]",
        "spec.roleRef.kind",
        "expected Role",
    ),
    (
        "subjects: [{kind: User, name: alice}]\nroleRef: all\nscopes: [a]",
        "spec.roleRef",
        "expected a mapping",
    ),
    (
        "subjects: [{kind: User, name: alice}]\nroleRef: {name: all}\nscopes: ['(']",
        "spec.scopes[0]",
        "invalid regex",
    ),
    (
        "subjects: [{kind: User, name: alice}]\nroleRef: {name: all}\nscopes: ['a', '^x\\z']",
        "spec.scopes[1]",
        "write \\Z",
    ),
    (
        "subjects: [{kind: User, name: alice}]\nroleRef: {name: all}\nscopes: []",
        "spec.scopes",
        "at least one",
    ),
    ("subjects: [{kind: User, name: alice}]\nroleRef: {name: all}", "spec.scopes", "required"),
    (
        "subjects: [{kind: User, name: alice}]\nroleRef: {name: all}\nscopes: '^a'",
        "spec.scopes",
        "expected a list of strings",
    ),
]


@pytest.mark.parametrize(("spec", "field", "fragment"), BINDING_ERRORS)
def test_binding_errors(tmp_path: Path, spec: str, field: str, fragment: str) -> None:
    error(
        tmp_path,
        USER,
        ROLE,
        doc("RoleBinding", "b", spec),
        document=3,
        field=field,
        fragment=fragment,
    )


def test_role_may_be_defined_after_its_binding(tmp_path: Path) -> None:
    assert len(load(tmp_path, USER, binding(), ROLE).bindings) == 1


def test_subjects_that_match_nobody_are_warnings(tmp_path: Path) -> None:
    manifests = load(
        tmp_path,
        USER,
        ROLE,
        doc(
            "RoleBinding",
            "b",
            "subjects: [{kind: User, name: ghost}, {kind: Group, name: void}]\n"
            "roleRef: {name: all}\nscopes: [a]",
        ),
    )
    assert any('no User named "ghost"' in w for w in manifests.warnings)
    assert any('no User is in group "void"' in w for w in manifests.warnings)


# --------------------------------------------------------------------------- Token


def test_token_with_a_hash(tmp_path: Path) -> None:
    manifests = load(
        tmp_path,
        USER,
        doc(
            "Token",
            "ci",
            f"username: alice\nvalueSha256: {SHA}\nexpiresAt: 2999-01-31T12:00:00+02:00",
        ),
    )
    (token,) = manifests.tokens
    assert (token.name, token.username, token.value_sha256) == ("ci", "alice", SHA)
    assert token.expires_at == datetime(2999, 1, 31, 10, 0, tzinfo=UTC)
    assert token.expires_at.tzinfo is not None
    assert manifests.warnings == ()


def test_token_with_a_plain_value_warns_and_keeps_only_the_hash(tmp_path: Path) -> None:
    manifests = load(tmp_path, USER, doc("Token", "ci", "username: alice\nvalue: robot-token"))
    (token,) = manifests.tokens
    assert token.value_sha256 == SHA
    assert token.expires_at is None
    assert any("spec.valueSha256" in w and 'Token "ci"' in w for w in manifests.warnings)
    assert not any("robot-token" in w for w in manifests.warnings)
    assert "robot-token" not in repr(manifests)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'2030-01-02T03:04:05Z'", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02t03:04:05.123456789z", datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        (
            "2030-01-02 03:04:05-05:30",
            datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
        ),
    ],
)
def test_expires_at_forms(tmp_path: Path, text: str, expected: datetime) -> None:
    manifests = load(
        tmp_path, USER, doc("Token", "t", f"username: alice\nvalueSha256: {SHA}\nexpiresAt: {text}")
    )
    assert manifests.tokens[0].expires_at == expected


def test_expired_token_is_a_warning(tmp_path: Path) -> None:
    manifests = load(
        tmp_path,
        USER,
        doc("Token", "t", f"username: alice\nvalueSha256: {SHA}\nexpiresAt: 2001-01-01T00:00:00Z"),
    )
    assert any("expired" in w for w in manifests.warnings)


TOKEN_ERRORS = [
    ("username: alice", "spec.valueSha256", "required field is missing (or give spec.value)"),
    (f"username: alice\nvalue: robot-token\nvalueSha256: {SHA}", "spec.value", "only one of"),
    (f"username: alice\nvalueSha256: {SHA.upper()}", "spec.valueSha256", "64 lowercase"),
    (f"username: alice\nvalueSha256: {SHA[:-1]}", "spec.valueSha256", "64 lowercase"),
    ("username: alice\nvalue: 12345", "spec.value", "expected a string, got an integer"),
    (f"valueSha256: {SHA}", "spec.username", "required field is missing"),
    (f"username: ghost\nvalueSha256: {SHA}", "spec.username", 'no User named "ghost"'),
    (f"username: alice\nvalueSha256: {SHA}\nexpiresAt: 2030-01-01", "spec.expiresAt", "RFC 3339"),
    (
        f"username: alice\nvalueSha256: {SHA}\nexpiresAt: 2030-01-01T00:00:00",
        "spec.expiresAt",
        "time zone",
    ),
    (
        f"username: alice\nvalueSha256: {SHA}\nexpiresAt: 2030-13-01T00:00:00Z",
        "spec.expiresAt",
        "invalid time",
    ),
    (
        f"username: alice\nvalueSha256: {SHA}\nexpiresAt: 1700000000",
        "spec.expiresAt",
        "expected a string",
    ),
    (f"username: alice\nvalueSha256: {SHA}\nscopes: []", "spec.scopes", "unknown field"),
]


@pytest.mark.parametrize(("spec", "field", "fragment"), TOKEN_ERRORS)
def test_token_errors(tmp_path: Path, spec: str, field: str, fragment: str) -> None:
    message = error(
        tmp_path, USER, doc("Token", "t", spec), document=2, field=field, fragment=fragment
    )
    assert "robot-token" not in message
    assert SHA not in message.lower()


def test_two_tokens_with_one_value_are_an_error(tmp_path: Path) -> None:
    error(
        tmp_path,
        USER,
        doc("Token", "t1", "username: alice\nvalue: robot-token"),
        doc("Token", "t2", f"username: alice\nvalueSha256: {SHA}"),
        document=3,
        field="spec",
        fragment='same token value as Token "t1"',
    )


# --------------------------------------------------------------------------- PullThroughCache


def test_cache_fields(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("file-pass\n")
    manifests = load(
        tmp_path,
        doc(
            "PullThroughCache",
            "hub",
            "upstream: {url: 'https://registry-1.docker.io/', "
            "timeout: 10m, ttl: 30d, username: me, password: inline-pass}\nscopes: ['^library/']",
        ),
        doc(
            "PullThroughCache",
            "ghcr",
            f"upstream: {{url: 'http://ghcr.local:8080/v', "
            f"timeout: 90, ttl: 1h30m, username: me, passwordFile: {tmp_path / 'pw'}}}\n"
            "scopes: ['^ghcr/']",
        ),
        doc(
            "PullThroughCache",
            "quay",
            "upstream: {url: 'https://quay.io', timeout: 500ms, "
            "username: me, passwordEnv: QUAY_PW}\nscopes: ['^quay/']",
        ),
        env={"QUAY_PW": "env-pass"},
    )
    hub, ghcr, quay = manifests.caches
    assert hub.upstream.url == "https://registry-1.docker.io"
    assert (hub.upstream.timeout_seconds, hub.upstream.ttl_seconds) == (600.0, 30 * 86400.0)
    assert (hub.upstream.username, hub.upstream.password) == ("me", "inline-pass")
    assert [s.pattern for s in hub.scopes] == ["^library/"]
    assert ghcr.upstream.url == "http://ghcr.local:8080/v"
    assert (ghcr.upstream.timeout_seconds, ghcr.upstream.ttl_seconds) == (90.0, 5400.0)
    assert ghcr.upstream.password == "file-pass"
    assert quay.upstream.timeout_seconds == pytest.approx(0.5)
    assert quay.upstream.ttl_seconds is None
    assert quay.upstream.password == "env-pass"
    minimal = (
        load(tmp_path, doc("PullThroughCache", "m", "upstream: {url: 'http://m'}\nscopes: [x]"))
        .caches[0]
        .upstream
    )
    assert (minimal.timeout_seconds, minimal.username, minimal.password) == (None, None, None)


CACHE_ERRORS = [
    ("upstream: {url: 'ftp://x'}\nscopes: [a]", "spec.upstream.url", "http:// or https://"),
    ("upstream: {url: 'registry-1.docker.io'}\nscopes: [a]", "spec.upstream.url", "with a host"),
    ("upstream: {url: 'https://u:p@x'}\nscopes: [a]", "spec.upstream.url", "not in the URL"),
    ("upstream: {url: 'https://x:99999'}\nscopes: [a]", "spec.upstream.url", "invalid URL"),
    ("upstream: {url: 'https://x/?a=b'}\nscopes: [a]", "spec.upstream.url", "query"),
    ("upstream: {timeout: 1s}\nscopes: [a]", "spec.upstream.url", "required field"),
    (
        "upstream: {url: 'https://x', timeout: 10 minutes}\nscopes: [a]",
        "spec.upstream.timeout",
        "expected a duration",
    ),
    (
        "upstream: {url: 'https://x', timeout: -1}\nscopes: [a]",
        "spec.upstream.timeout",
        "expected a duration",
    ),
    (
        "upstream: {url: 'https://x', timeout: true}\nscopes: [a]",
        "spec.upstream.timeout",
        "got a boolean",
    ),
    ("upstream: {url: 'https://x', ttl: 1w}\nscopes: [a]", "spec.upstream.ttl", "duration"),
    (
        "upstream: {url: 'https://x', username: u, password: hunter2, passwordEnv: P}\nscopes: [a]",
        "spec.upstream.passwordEnv",
        "only one of",
    ),
    (
        "upstream: {url: 'https://x', password: hunter2}\nscopes: [a]",
        "spec.upstream.username",
        "required when a password",
    ),
    (
        "upstream: {url: 'https://x', username: u}\nscopes: [a]",
        "spec.upstream.password",
        "required when a username",
    ),
    (
        "upstream: {url: 'https://x', username: u, passwordEnv: UNSET_VAR}\nscopes: [a]",
        "spec.upstream.passwordEnv",
        "UNSET_VAR is not set",
    ),
    (
        "upstream: {url: 'https://x', username: u, passwordFile: /no/such/file}\nscopes: [a]",
        "spec.upstream.passwordFile",
        "cannot read",
    ),
    (
        "upstream: {url: 'https://x', insecure: true}\nscopes: [a]",
        "spec.upstream.insecure",
        "unknown field",
    ),
    ("upstream: {url: 'https://x'}\nscopes: ['[a-']", "spec.scopes[0]", "invalid regex"),
    ("upstream: {url: 'https://x'}", "spec.scopes", "required field"),
]


@pytest.mark.parametrize(("spec", "field", "fragment"), CACHE_ERRORS)
def test_cache_errors(tmp_path: Path, spec: str, field: str, fragment: str) -> None:
    message = error(
        tmp_path, doc("PullThroughCache", "c", spec), document=1, field=field, fragment=fragment
    )
    assert "hunter2" not in message


def test_cache_routing_fields(tmp_path: Path) -> None:
    manifests = load(
        tmp_path,
        doc(
            "PullThroughCache",
            "hub",
            "upstream: {url: 'https://registry-1.docker.io', ttl: 10m, maxStale: 2h, "
            "hosts: [Docker.IO, 'registry-1.docker.io', 'localhost:5000', '[::1]:443']}\n"
            "scopes: ['^dockerhub/.+$']\nprefix: dockerhub/",
        ),
        doc(
            "PullThroughCache",
            "mirror",
            "upstream: {url: 'https://mirror.example', maxStale: 0}\n"
            "scopes: ['^library/.+$']\nprefix: ''",
        ),
        doc("PullThroughCache", "seed", "upstream: {url: 'https://seed.example'}\nscopes: [x]"),
    )
    hub, mirror, seed = manifests.caches
    assert hub.upstream.hosts == (
        "docker.io",
        "registry-1.docker.io",
        "localhost:5000",
        "[::1]:443",
    )
    assert (hub.upstream.ttl_seconds, hub.upstream.max_stale_seconds) == (600.0, 7200.0)
    assert hub.prefix == "dockerhub/"
    assert (mirror.prefix, mirror.upstream.max_stale_seconds) == ("", 0.0)
    # The seed's fields alone: no prefix, no hosts, a day of staleness.
    assert (seed.prefix, seed.upstream.hosts, seed.upstream.max_stale_seconds) == ("", (), 86400.0)


@pytest.mark.parametrize(
    "scope",
    [
        "^dockerhub/",
        "^docker",  # shorter than the prefix, agrees with it
        "^dockerhub/library/[^/]+$",
        "\\Adockerhub\\/",
        "library",  # not anchored: found after the prefix
        "^(dockerhub|quay)/",  # a group: the head cannot be told
        "^dockerhubs?/",  # the last letter is optional: the head is "dockerhub"
        "^[d]ockerhub/",
    ],
)
def test_cache_scopes_that_may_match_under_the_prefix(tmp_path: Path, scope: str) -> None:
    spec = f"upstream: {{url: 'https://x'}}\nscopes: ['{scope}']\nprefix: dockerhub/"
    (cache,) = load(tmp_path, doc("PullThroughCache", "c", spec)).caches
    assert cache.scopes[0].pattern == scope


CACHE_ROUTING_ERRORS = [
    ("maxStale: -1", "spec.upstream.maxStale", "expected a duration"),
    ("maxStale: 1w", "spec.upstream.maxStale", "expected a duration"),
    ("maxStale: true", "spec.upstream.maxStale", "got a boolean"),
    ("hosts: docker.io", "spec.upstream.hosts", "expected a list of strings"),
    ("hosts: ['https://docker.io']", "spec.upstream.hosts[0]", "no scheme or path"),
    ("hosts: [docker.io, 'quay.io/x']", "spec.upstream.hosts[1]", "no scheme or path"),
    ("hosts: ['-bad.example']", "spec.upstream.hosts[0]", "expected a registry host"),
    ("hosts: ['bad_host']", "spec.upstream.hosts[0]", "expected a registry host"),
    ("hosts: ['localhost:0']", "spec.upstream.hosts[0]", "invalid port"),
    ("hosts: ['localhost:99999']", "spec.upstream.hosts[0]", "invalid port"),
    ("hosts: ['localhost:']", "spec.upstream.hosts[0]", "invalid port"),
    ("hosts: ['[::g]']", "spec.upstream.hosts[0]", "expected a registry host"),
    ("hosts: ['::1']", "spec.upstream.hosts[0]", "expected a registry host"),
    ("hosts: ['u@docker.io']", "spec.upstream.hosts[0]", "expected a registry host"),
    ("hosts: [docker.io, Docker.io]", "spec.upstream.hosts[1]", "listed twice"),
    ("hosts: ['']", "spec.upstream.hosts[0]", "must not be empty"),
    ("host: [docker.io]", "spec.upstream.host", "unknown field"),
]


@pytest.mark.parametrize(("upstream", "field", "fragment"), CACHE_ROUTING_ERRORS)
def test_cache_upstream_routing_errors(
    tmp_path: Path, upstream: str, field: str, fragment: str
) -> None:
    spec = f"upstream: {{url: 'https://x', {upstream}}}\nscopes: [a]"
    error(tmp_path, doc("PullThroughCache", "c", spec), document=1, field=field, fragment=fragment)


CACHE_PREFIX_ERRORS = [
    ("prefix: dockerhub", "spec.prefix", "followed by '/'"),
    ("prefix: /", "spec.prefix", "followed by '/'"),
    ("prefix: Dockerhub/", "spec.prefix", "followed by '/'"),
    ("prefix: a//", "spec.prefix", "followed by '/'"),
    ("prefix: ' '", "spec.prefix", "must not be empty"),
    ("prefix: 5", "spec.prefix", "expected a string"),
    ("prefixes: dockerhub/", "spec.prefixes", "unknown field"),
]


@pytest.mark.parametrize(("prefix", "field", "fragment"), CACHE_PREFIX_ERRORS)
def test_cache_prefix_errors(tmp_path: Path, prefix: str, field: str, fragment: str) -> None:
    spec = f"upstream: {{url: 'https://x'}}\nscopes: ['^']\n{prefix}"
    error(tmp_path, doc("PullThroughCache", "c", spec), document=1, field=field, fragment=fragment)


@pytest.mark.parametrize(
    ("scopes", "field"),
    [
        ("['^library/']", "spec.scopes[0]"),
        ("['^dockerhub/x', '^dockerhubx/']", "spec.scopes[1]"),
        ("['^dockerhub$']", "spec.scopes[0]"),  # the name cannot end before the "/"
        ("['\\Aquay/']", "spec.scopes[0]"),
        ("['^dockerhub-/']", "spec.scopes[0]"),
    ],
)
def test_cache_scope_that_can_match_nothing_under_the_prefix(
    tmp_path: Path, scopes: str, field: str
) -> None:
    spec = f"upstream: {{url: 'https://x'}}\nscopes: {scopes}\nprefix: dockerhub/"
    error(
        tmp_path,
        doc("PullThroughCache", "c", spec),
        document=1,
        field=field,
        fragment="can match no name under spec.prefix 'dockerhub/'",
    )


def test_cache_host_listed_by_two_caches(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    first = write(
        cfg,
        "a.yaml",
        doc(
            "PullThroughCache",
            "hub",
            "upstream: {url: 'https://h', hosts: [docker.io]}\nscopes: ['^hub/']\nprefix: hub/",
        ),
    )
    second = write(
        cfg,
        "b.yaml",
        doc("User", "alice"),
        doc(
            "PullThroughCache",
            "other",
            "upstream: {url: 'https://o', "
            "hosts: [quay.io, DOCKER.io]}\nscopes: ['^o/']\nprefix: o/",
        ),
    )
    with pytest.raises(ConfigErrors) as caught:
        load_manifests([cfg], {})
    (message,) = caught.value.messages
    assert message == (
        f'{second}, document 2 (PullThroughCache "other"): spec.upstream.hosts[1]: '
        f"'docker.io' is also listed by PullThroughCache \"hub\" ({first}, document 1); "
        "a host may have one cache only"
    )


def test_secrets_never_appear_in_messages(tmp_path: Path) -> None:
    message = error(
        tmp_path,
        doc("Configuration", "c", "web: {tokenSecret: very-secret-1, tokenSecretFile: /x}"),
        document=1,
        field="spec.web.tokenSecretFile",
        fragment="only one of",
    )
    assert "very-secret-1" not in message


# --------------------------------------------------------------------------- allowed


def rbac(
    *bindings: RoleBinding, roles: tuple[Role, ...] = (), users: tuple[User, ...] = ()
) -> Manifests:
    default_users = (User("alice", None, ("dev",)), User("bob", None, ()))
    return Manifests(users=users or default_users, roles=roles, bindings=bindings)


def role(name: str, resources: set[str], verbs: set[str]) -> Role:
    return Role(name, frozenset(resources), frozenset(verbs))


def bind(name: str, role_name: str, *scopes: str, subject: Subject | None = None) -> RoleBinding:
    who = subject or Subject("Group", "dev")
    return RoleBinding(name, (who,), role_name, tuple(re.compile(s) for s in scopes))


ALL_VERBS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


@pytest.mark.parametrize(
    ("verbs", "resource", "granted"),
    [
        ({"*"}, "manifests", set(ALL_VERBS)),
        ({"GET"}, "manifests", {"GET", "HEAD"}),  # GET allows HEAD
        ({"HEAD"}, "manifests", {"HEAD"}),  # but HEAD does not allow GET
        ({"pull"}, "manifests", {"GET", "HEAD"}),
        ({"push"}, "manifests", {"POST", "PUT", "PATCH"}),
        ({"push"}, "blobs", {"GET", "HEAD", "POST", "PUT", "PATCH"}),  # an upload's status
        ({"delete"}, "blobs", {"DELETE"}),
        ({"pull", "push", "delete"}, "tags", set(ALL_VERBS)),
        ({"POST", "DELETE"}, "blobs", {"POST", "DELETE"}),
    ],
)
def test_verb_matching(verbs: set[str], resource: str, granted: set[str]) -> None:
    manifests = rbac(bind("b", "r", "^app$"), roles=(role("r", {resource}, verbs),))
    for verb in ALL_VERBS:
        expected = ["b"] if verb in granted else []
        assert allowed(manifests, "alice", resource, "app", verb) == expected, verb
        assert role_allows(manifests.roles[0], resource, verb) == bool(expected)


def test_resources_must_be_listed_or_star() -> None:
    manifests = rbac(
        bind("only-tags", "tags", "^app$"),
        bind("star", "star", "^other$"),
        roles=(role("tags", {"tags"}, {"GET"}), role("star", {"*"}, {"GET"})),
    )
    assert allowed(manifests, "alice", "tags", "app", "GET") == ["only-tags"]
    assert allowed(manifests, "alice", "blobs", "app", "GET") == []
    for resource in ("catalog", "tags", "blobs", "manifests"):
        assert allowed(manifests, "alice", resource, "other", "GET") == (
            [] if resource == "catalog" else ["star"]
        )


def test_subjects_user_or_group() -> None:
    manifests = rbac(
        bind("by-group", "r", "^app$"),
        bind("by-user", "r", "^app$", subject=Subject("User", "bob")),
        bind("other-user", "r", "^app$", subject=Subject("User", "carol")),
        roles=(role("r", {"*"}, {"*"}),),
    )
    assert allowed(manifests, "alice", "blobs", "app", "GET") == ["by-group"]
    assert allowed(manifests, "bob", "blobs", "app", "GET") == ["by-user"]


def test_unknown_user_and_undefined_anonymous_are_denied() -> None:
    anyone = Subject("User", "anonymous")
    manifests = rbac(bind("b", "r", ".*", subject=anyone), roles=(role("r", {"*"}, {"*"}),))
    assert allowed(manifests, "anonymous", "blobs", "app", "GET") == []
    assert allowed(manifests, "mallory", "blobs", "app", "GET") == []
    defined = rbac(
        bind("b", "r", ".*", subject=anyone),
        roles=(role("r", {"*"}, {"*"}),),
        users=(User("anonymous", None, ()),),
    )
    assert allowed(defined, "anonymous", "blobs", "app", "GET") == ["b"]


def test_scopes_are_searched_not_anchored() -> None:
    manifests = rbac(bind("b", "r", "team"), roles=(role("r", {"*"}, {"*"}),))
    assert allowed(manifests, "alice", "blobs", "my/team-app", "GET") == ["b"]
    assert allowed(manifests, "alice", "blobs", "other", "GET") == []


def test_tag_requests_match_the_name_or_name_colon_tag() -> None:
    manifests = rbac(
        bind("exact-name", "r", "^team/app$"),
        bind("seed-v1-tags", "r", "^seed/app:v1\\."),
        roles=(role("r", {"*"}, {"GET"}),),
    )
    # FIX: the seed denied `^team/app$` for pulls by tag (it only saw "team/app:latest").
    assert allowed(manifests, "alice", "manifests", "team/app", "GET", "latest") == ["exact-name"]
    assert allowed(manifests, "alice", "manifests", "team/app", "GET") == ["exact-name"]
    # Seed patterns written for name:tag keep restricting tags.
    assert allowed(manifests, "alice", "manifests", "seed/app", "GET", "v1.2") == ["seed-v1-tags"]
    assert allowed(manifests, "alice", "manifests", "seed/app", "GET", "v2.0") == []
    assert allowed(manifests, "alice", "manifests", "seed/app", "GET") == []


def test_catalog_is_checked_against_the_empty_name() -> None:
    manifests = rbac(
        bind("catalog", "r", "^$"),
        bind("apps", "r", "^app"),
        roles=(role("r", {"catalog", "tags"}, {"GET"}),),
    )
    assert allowed(manifests, "alice", "catalog", "", "GET") == ["catalog"]
    assert allowed(manifests, "alice", "catalog", "app", "GET", "x") == ["catalog"]
    assert allowed(manifests, "alice", "tags", "", "GET") == ["catalog"]
    assert allowed(manifests, "alice", "tags", "app", "GET") == ["apps"]


def test_union_of_bindings_in_order_and_missing_roles_grant_nothing() -> None:
    manifests = rbac(
        bind("second", "r", "^app$"),
        bind("ghost-role", "nope", ".*"),
        bind("first", "r", "app"),
        bind("second", "r", "app"),  # the same name twice is reported once
        roles=(role("r", {"*"}, {"GET"}),),
    )
    assert allowed(manifests, "alice", "blobs", "app", " get ") == ["second", "first"]
    assert allowed(manifests, "alice", "blobs", "other", "GET") == []
    assert allowed(manifests, "alice", "blobs", "app", "DELETE") == []


# --------------------------------------------------------------------------- examples


@pytest.fixture(scope="module")
def examples() -> Manifests:
    return load_manifests([EXAMPLES], {})


def verbs_allowed(
    manifests: Manifests, user: str, resource: str, repo: str, tag: str | None = None
) -> set[str]:
    return {v for v in ALL_VERBS if allowed(manifests, user, resource, repo, v, tag)}


READ = {"GET", "HEAD"}
PUSH = {"GET", "HEAD", "POST", "PUT", "PATCH"}


def test_examples_load_cleanly(examples: Manifests) -> None:
    assert examples.warnings == ()
    assert {u.name for u in examples.users} == {"alice", "anonymous", "ci-robot", "carol", "bob"}
    assert examples.configuration.data_dir == "/var/lib/simple-registry"
    assert examples.configuration.web.token_timeout_seconds == 300
    assert examples.configuration.web.ui is True  # the example serves the web UI


def test_examples_every_file_is_commented() -> None:
    assert len(list(EXAMPLES.glob("*.yaml"))) >= 7
    for path in sorted(EXAMPLES.glob("*.yaml")):
        assert path.read_text().startswith("# "), path


def test_example_admins_do_everything(examples: Manifests) -> None:
    for resource in ("tags", "blobs", "manifests"):
        for repo in ("library/alpine", "team-a/app", "apps/x", "deep/ly/nested"):
            assert verbs_allowed(examples, "alice", resource, repo) == set(ALL_VERBS)
    assert verbs_allowed(examples, "alice", "catalog", "") == set(ALL_VERBS)
    assert allowed(examples, "alice", "manifests", "x", "DELETE") == ["admins-everything"]


def test_example_anonymous_pulls_library_and_lists_the_catalog(examples: Manifests) -> None:
    assert verbs_allowed(examples, "anonymous", "catalog", "") == READ
    for resource in ("tags", "blobs", "manifests"):
        assert verbs_allowed(examples, "anonymous", resource, "library/alpine") == READ
        assert verbs_allowed(examples, "anonymous", resource, "library/alpine", "3.20") == READ
        assert verbs_allowed(examples, "anonymous", resource, "library/a/b") == set()
        assert verbs_allowed(examples, "anonymous", resource, "team-a/app") == set()
        assert verbs_allowed(examples, "anonymous", resource, "mylibrary/x") == set()


def test_example_docker_hub_cache_covers_library(examples: Manifests) -> None:
    (hub,) = examples.caches
    assert hub.upstream.url == "https://registry-1.docker.io"
    assert hub.upstream.timeout_seconds == 30
    assert hub.upstream.hosts == ("docker.io", "registry-1.docker.io")
    assert hub.prefix == ""
    assert hub.upstream.password is None
    assert any(s.search("library/alpine") for s in hub.scopes)
    assert not any(s.search("library/a/b") or s.search("team-a/app") for s in hub.scopes)


def test_example_ci_robot_pushes_apps_with_its_token(examples: Manifests) -> None:
    (token,) = examples.tokens
    assert token.username == "ci-robot"
    robot = next(u for u in examples.users if u.name == "ci-robot")
    assert robot.password_hash is None  # only the token logs it in
    for resource in ("tags", "blobs", "manifests"):
        assert verbs_allowed(examples, "ci-robot", resource, "apps/web/api") == PUSH
        assert verbs_allowed(examples, "ci-robot", resource, "apps/web", "v1") == PUSH
        assert verbs_allowed(examples, "ci-robot", resource, "library/alpine") == READ
        assert verbs_allowed(examples, "ci-robot", resource, "team-a/app") == set()
    assert "DELETE" not in verbs_allowed(examples, "ci-robot", "manifests", "apps/x")


def test_example_auditor_reads_everything_and_writes_nothing(examples: Manifests) -> None:
    assert verbs_allowed(examples, "carol", "catalog", "") == READ
    for resource in ("tags", "blobs", "manifests"):
        for repo in ("library/alpine", "team-a/app", "apps/x", "any/thing"):
            assert verbs_allowed(examples, "carol", resource, repo) == READ


def test_example_team_a_pushes_its_namespace_only(examples: Manifests) -> None:
    for resource in ("tags", "blobs", "manifests"):
        assert verbs_allowed(examples, "bob", resource, "team-a/app") == PUSH
        assert verbs_allowed(examples, "bob", resource, "team-a/deep/app", "v2") == PUSH
        assert verbs_allowed(examples, "bob", resource, "team-b/app") == set()
        assert verbs_allowed(examples, "bob", resource, "team-a") == set()  # the namespace itself
        assert verbs_allowed(examples, "bob", resource, "library/alpine") == READ  # via guests
    assert verbs_allowed(examples, "bob", "catalog", "") == READ
    assert "DELETE" not in verbs_allowed(examples, "bob", "manifests", "team-a/app")


def test_a_caches_allow_pushes_is_true_or_false(tmp_path: Path) -> None:
    spec = "upstream: {url: 'https://up.example'}\nscopes: ['^up/']\nprefix: up/\n"
    allowing = load(tmp_path / "a", USER, doc("PullThroughCache", "up", spec + "allowPushes: true"))
    assert allowing.caches[0].allow_pushes is True
    plain = load(tmp_path / "b", USER, doc("PullThroughCache", "up", spec))
    assert plain.caches[0].allow_pushes is False
    with pytest.raises(ConfigError, match=r"spec\.allowPushes: expected true or false, got"):
        load(tmp_path / "c", USER, doc("PullThroughCache", "up", spec + "allowPushes: 'yes'"))
