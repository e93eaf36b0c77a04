"""Tests for the example plugins in examples/.

The host service never imports plugin code; these tests do, so that each
handler's behaviour can be checked directly. Parameters are validated against
the action's schema before every call, as the host would, so the schemas and
the handlers are tested together.
"""

import ast
import copy
import importlib.util
import inspect
import json
import math
import re
import statistics
import sys
from functools import lru_cache
from pathlib import Path

import jsonschema
import pytest

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
PLUGINS = ("text-tools", "json-tools", "stats")

REQUIRED_MANIFEST_KEYS = {
    "name", "version", "entrypoint", "description", "actions", "network", "secrets", "limits",
}
REQUIRED_ACTION_KEYS = {
    "handler", "description", "params", "cacheable", "default", "timeoutMs", "examples",
}


class Ctx:
    """The parts of the sandbox context a handler may use."""

    def __init__(self):
        self.secrets = {}
        self.logs = []
        self.log = self.logs.append
        self.execution_id = "test-execution"
        self.actor_id = "test-actor"
        self.http = None


@lru_cache(maxsize=None)
def load(plugin):
    """Return (manifest, module) for an example plugin."""
    folder = EXAMPLES_DIR / plugin
    manifest = json.loads((folder / "plugin.json").read_text(encoding="utf-8"))
    module_name = "example_plugin_" + plugin.replace("-", "_")
    spec = importlib.util.spec_from_file_location(module_name, folder / manifest["entrypoint"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return manifest, module


def schema_errors(plugin, action, params):
    schema = load(plugin)[0]["actions"][action]["params"]
    return list(jsonschema.Draft202012Validator(schema).iter_errors(params))


def call(plugin, action, params):
    """Validate params like the host does, run the handler and check that the
    result survives strict JSON serialisation (no NaN, no custom types)."""
    manifest, module = load(plugin)
    spec = manifest["actions"][action]
    jsonschema.Draft202012Validator(spec["params"]).validate(params)
    result = getattr(module, spec["handler"])(params, Ctx())
    return json.loads(json.dumps(result, allow_nan=False))


def action_ids():
    return [
        (plugin, action)
        for plugin in PLUGINS
        for action in json.loads((EXAMPLES_DIR / plugin / "plugin.json").read_text())["actions"]
    ]


# --------------------------------------------------------------------------
# Manifests and packaging
# --------------------------------------------------------------------------


@pytest.mark.parametrize("plugin", PLUGINS)
def test_manifest_shape(plugin):
    manifest, _ = load(plugin)
    assert REQUIRED_MANIFEST_KEYS <= manifest.keys()
    assert manifest["name"] == plugin
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", manifest["name"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert manifest["entrypoint"] == "plugin.py"
    assert (EXAMPLES_DIR / plugin / manifest["entrypoint"]).is_file()
    assert isinstance(manifest["description"], str) and manifest["description"].strip()
    assert manifest["actions"]
    # Pure computation: no network access and no secrets.
    assert manifest["network"] == {"allowedDomains": []}
    assert manifest["secrets"] == []
    assert isinstance(manifest["limits"]["memoryMb"], int) and manifest["limits"]["memoryMb"] > 0


@pytest.mark.parametrize("plugin,action", action_ids())
def test_action_shape(plugin, action):
    manifest, module = load(plugin)
    spec = manifest["actions"][action]
    assert re.fullmatch(r"[a-z][a-zA-Z0-9]*", action), "action names are camelCase"
    assert REQUIRED_ACTION_KEYS <= spec.keys()
    assert isinstance(spec["description"], str) and spec["description"].strip()

    handler = getattr(module, spec["handler"], None)
    assert inspect.isfunction(handler), f"{spec['handler']} is not a function in plugin.py"
    assert handler.__module__ == module.__name__
    assert list(inspect.signature(handler).parameters) == ["params", "ctx"]
    assert handler.__doc__, "handlers document why they behave as they do"

    schema = spec["params"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema.get("required", [])) <= schema["properties"].keys()

    assert spec["cacheable"] is True, "every example action is pure"
    assert isinstance(spec["timeoutMs"], int) and spec["timeoutMs"] > 0


@pytest.mark.parametrize("plugin,action", action_ids())
def test_examples_validate_and_run(plugin, action):
    spec = load(plugin)[0]["actions"][action]
    assert spec["examples"]
    for example in spec["examples"]:
        assert schema_errors(plugin, action, example["params"]) == []
        call(plugin, action, example["params"])


@pytest.mark.parametrize("plugin", PLUGINS)
def test_every_public_function_is_an_action_handler(plugin):
    manifest, module = load(plugin)
    handlers = {spec["handler"] for spec in manifest["actions"].values()}
    public = {
        name
        for name, value in vars(module).items()
        if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_")
    }
    assert public == handlers


@pytest.mark.parametrize("plugin", PLUGINS)
def test_plugin_imports_only_the_standard_library(plugin):
    source = (EXAMPLES_DIR / plugin / "plugin.py").read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "plugins are single files; no relative imports"
            imported.add(node.module.split(".")[0])
    assert imported <= sys.stdlib_module_names


def test_readme_lists_every_plugin_and_action():
    readme = (EXAMPLES_DIR / "README.md").read_text(encoding="utf-8")
    for plugin, action in action_ids():
        assert f"`{plugin}`" in readme
        assert f"`{action}`" in readme


# --------------------------------------------------------------------------
# text-tools
# --------------------------------------------------------------------------


def text(action, **params):
    return call("text-tools", action, params)


def test_word_count_basic():
    result = text("wordCount", text="The quick brown fox jumps over the lazy dog. The dog sleeps!", top=3)
    assert result == {
        "words": 12,
        "uniqueWords": 9,
        "characters": 60,
        "charactersNoSpaces": 49,
        "lines": 1,
        "sentences": 2,
        "paragraphs": 1,
        "averageWordLength": 3.92,
        "topWords": [
            {"word": "the", "count": 3},
            {"word": "dog", "count": 2},
            {"word": "brown", "count": 1},
        ],
    }


def test_word_count_contractions_and_hyphenated_words_count_once():
    assert text("wordCount", text="Don't stop the well-known show")["words"] == 5


def test_word_count_lines_paragraphs_and_sentences():
    result = text("wordCount", text="First line.\nSecond line!\n\nNew paragraph? Yes.\n")
    assert result["lines"] == 4
    assert result["paragraphs"] == 2
    assert result["sentences"] == 4


def test_word_count_does_not_split_sentences_on_decimals_or_domains():
    assert text("wordCount", text="Pi is 3.14 and see example.com today. Then stop")["sentences"] == 2


def test_word_count_top_words_are_case_insensitive_and_ties_alphabetical():
    result = text("wordCount", text="b A a B c", top=2)
    assert result["topWords"] == [{"word": "a", "count": 2}, {"word": "b", "count": 2}]
    assert text("wordCount", text="b A a B c", top=0)["topWords"] == []


def test_word_count_exclude_stopwords():
    result = text("wordCount", text="The cat and the hat and the bat", excludeStopwords=True)
    assert result["topWords"] == [
        {"word": "bat", "count": 1},
        {"word": "cat", "count": 1},
        {"word": "hat", "count": 1},
    ]
    assert result["words"] == 8, "stopwords still count as words"


def test_word_count_empty_text():
    result = text("wordCount", text="")
    assert result["words"] == result["characters"] == result["lines"] == result["sentences"] == 0
    assert result["averageWordLength"] == 0
    assert result["topWords"] == []


def test_word_count_counts_composed_characters_once():
    assert text("wordCount", text="cafe\u0301")["characters"] == 4


def test_word_count_rejects_bad_params():
    assert schema_errors("text-tools", "wordCount", {"text": "x", "top": -1})
    assert schema_errors("text-tools", "wordCount", {"text": "x", "colour": "red"})
    assert schema_errors("text-tools", "wordCount", {})


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"text": "Hello, World!"}, "hello-world"),
        ({"text": "  Ça va? Très bien!  "}, "ca-va-tres-bien"),
        ({"text": "Straße & Æsir"}, "strasse-aesir"),
        ({"text": "snake_case and  spaces"}, "snake-case-and-spaces"),
        ({"text": "Hello World", "separator": "_"}, "hello_world"),
        ({"text": "Ça va", "allowUnicode": True}, "ça-va"),
        ({"text": "日本語 text"}, "text"),
        ({"text": "日本語 text", "allowUnicode": True}, "日本語-text"),
        ({"text": "!!!"}, ""),
    ],
)
def test_slugify(params, expected):
    assert text("slugify", **params) == {"slug": expected}


def test_slugify_max_length_drops_whole_words():
    params = {"text": "A very long blog post title", "maxLength": 12}
    assert text("slugify", **params) == {"slug": "a-very-long"}
    assert text("slugify", text="exactly-eleven", maxLength=14) == {"slug": "exactly-eleven"}


def test_slugify_max_length_cuts_a_single_long_word():
    assert text("slugify", text="Supercalifragilistic words", maxLength=5) == {"slug": "super"}


def test_slugify_rejects_unknown_separator():
    assert schema_errors("text-tools", "slugify", {"text": "x", "separator": "+"})


@pytest.mark.parametrize(
    "case,expected",
    [
        ("upper", "PARSEHTTPRESPONSE, DON'T STOP"),
        ("lower", "parsehttpresponse, don't stop"),
        ("title", "Parsehttpresponse, Don't Stop"),
        ("snake", "parse_http_response_dont_stop"),
        ("kebab", "parse-http-response-dont-stop"),
        ("camel", "parseHttpResponseDontStop"),
        ("pascal", "ParseHttpResponseDontStop"),
        ("constant", "PARSE_HTTP_RESPONSE_DONT_STOP"),
    ],
)
def test_change_case(case, expected):
    assert text("changeCase", text="parseHTTPResponse, don't stop", case=case) == {"result": expected}


@pytest.mark.parametrize(
    "source,expected",
    [
        ("user-account id", "user_account_id"),
        ("XMLHttpRequest", "xml_http_request"),
        ("utf8Value v2Api", "utf8_value_v2_api"),
        ("already_snake_case", "already_snake_case"),
        ("Crème Brûlée", "crème_brûlée"),
        ("", ""),
    ],
)
def test_change_case_identifier_word_splitting(source, expected):
    assert text("changeCase", text=source, case="snake") == {"result": expected}


def test_change_case_title_keeps_spacing_and_punctuation():
    assert text("changeCase", text="hello   WORLD-wide\nweb", case="title") == {
        "result": "Hello   World-wide\nWeb"
    }


def test_change_case_rejects_unknown_case():
    assert schema_errors("text-tools", "changeCase", {"text": "x", "case": "sponge"})


def test_readability_scores():
    result = text("readability", text="The cat sat on the mat. It was happy.")
    assert result == {
        "words": 9,
        "sentences": 2,
        "syllables": 10,
        "wordsPerSentence": 4.5,
        "syllablesPerWord": 1.11,
        # 206.835 - 1.015 * 9/2 - 84.6 * 10/9
        "fleschReadingEase": 108.27,
        # 0.39 * 9/2 + 11.8 * 10/9 - 15.59
        "fleschKincaidGrade": -0.72,
        "level": "very easy",
    }


def test_readability_ranks_dense_prose_as_harder():
    easy = text("readability", text="I like my dog. My dog likes me. We play all day.")
    hard = text(
        "readability",
        text="Institutional accountability necessitates comprehensive organizational "
        "transparency regarding administrative procedures.",
    )
    assert hard["fleschReadingEase"] < 30 < 90 < easy["fleschReadingEase"]
    assert hard["level"] == "very difficult"
    assert hard["fleschKincaidGrade"] > easy["fleschKincaidGrade"]


@pytest.mark.parametrize(
    "word,syllables",
    [
        ("the", 1), ("make", 1), ("table", 2), ("agree", 2),
        ("jumped", 1), ("wanted", 2), ("happy", 2), ("whale", 1),
    ],
)
def test_syllable_estimate(word, syllables):
    assert load("text-tools")[1]._syllables(word) == syllables


def test_readability_requires_words():
    with pytest.raises(ValueError, match="no words"):
        text("readability", text="... !!! ???")
    assert schema_errors("text-tools", "readability", {"text": ""})


def test_extract_all_kinds():
    result = text(
        "extract",
        text="Mail ana@example.com or see https://example.com/docs. Thanks @bob! #release #1",
    )
    assert result == {
        "emails": ["ana@example.com"],
        "urls": ["https://example.com/docs"],
        "hashtags": ["#release"],
        "mentions": ["@bob"],
    }


def test_extract_urls_trim_sentence_punctuation_but_keep_balanced_brackets():
    result = text(
        "extract",
        text="See (https://en.wikipedia.org/wiki/Python_(language)), www.python.org; "
        "or https://example.com/a?b=1&c=2!",
        kinds=["urls"],
    )
    assert result == {
        "urls": [
            "https://en.wikipedia.org/wiki/Python_(language)",
            "www.python.org",
            "https://example.com/a?b=1&c=2",
        ]
    }


def test_extract_does_not_mistake_url_and_email_parts_for_tags():
    result = text(
        "extract",
        text="Docs at https://example.com/page#install and support@example.org; &#x20; ok",
        kinds=["hashtags", "mentions", "emails"],
    )
    assert result == {"hashtags": [], "mentions": [], "emails": ["support@example.org"]}


def test_extract_unique_flag():
    sample = "@ann @bob @ann"
    assert text("extract", text=sample, kinds=["mentions"]) == {"mentions": ["@ann", "@bob"]}
    assert text("extract", text=sample, kinds=["mentions"], unique=False) == {
        "mentions": ["@ann", "@bob", "@ann"]
    }


def test_extract_rejects_bad_kinds():
    assert schema_errors("text-tools", "extract", {"text": "x", "kinds": []})
    assert schema_errors("text-tools", "extract", {"text": "x", "kinds": ["phones"]})
    assert schema_errors("text-tools", "extract", {"text": "x", "kinds": ["urls", "urls"]})


# --------------------------------------------------------------------------
# json-tools
# --------------------------------------------------------------------------


def jt(action, **params):
    return call("json-tools", action, params)


SHOP = {
    "items": [{"name": "pen", "price": 2}, {"name": "ink", "price": 5}, {"sku": "x"}],
    "meta": {"db.host": "localhost", "*": "star", "tags": []},
}


def paths_and_values(result):
    return [(match["path"], match["value"]) for match in result["matches"]]


def test_query_wildcard_over_array_skips_missing_keys():
    result = jt("query", document=SHOP, path="items[*].name")
    assert paths_and_values(result) == [("items[0].name", "pen"), ("items[1].name", "ink")]
    assert result["count"] == 2


def test_query_negative_index_reports_canonical_path():
    assert paths_and_values(jt("query", document=SHOP, path="items[-1].sku")) == [("items[2].sku", "x")]


def test_query_quoted_keys_and_literal_star():
    assert paths_and_values(jt("query", document=SHOP, path='meta["db.host"]')) == [
        ('meta["db.host"]', "localhost")
    ]
    assert paths_and_values(jt("query", document=SHOP, path='meta["*"]')) == [('meta["*"]', "star")]


def test_query_wildcard_over_object_values():
    result = jt("query", document={"a": {"id": 1}, "b": {"id": 2}, "c": 3}, path="*.id")
    assert paths_and_values(result) == [("a.id", 1), ("b.id", 2)]


def test_query_root_and_array_root():
    assert paths_and_values(jt("query", document=[10, 20], path="")) == [("", [10, 20])]
    assert paths_and_values(jt("query", document=[10, 20], path="[1]")) == [("[1]", 20)]


@pytest.mark.parametrize(
    "path",
    ["missing", "items[3]", "items[-4]", "items.0", "meta[0]", "items[0].name.first", "meta.tags[*]"],
)
def test_query_without_match_returns_nothing(path):
    assert jt("query", document=SHOP, path=path) == {"matches": [], "count": 0}


@pytest.mark.parametrize("path", ["a..b", ".a", "a b", "a[x]", "a[1", "a]", 'a["\\q"]', "a.", 'a."b"'])
def test_query_rejects_malformed_paths(path):
    with pytest.raises(ValueError, match="invalid path"):
        jt("query", document={}, path=path)


def test_flatten_and_unflatten_round_trip():
    document = {
        "user": {"name": "Ada", "roles": ["admin", {"scope": "dev"}]},
        "odd keys": {"a.b": 1, "*": 2, "": 3},
        "empty": {"obj": {}, "list": []},
        "nothing": None,
    }
    flat = jt("flatten", document=document)["flat"]
    assert flat == {
        "user.name": "Ada",
        "user.roles[0]": "admin",
        "user.roles[1].scope": "dev",
        '["odd keys"]["a.b"]': 1,
        '["odd keys"]["*"]': 2,
        '["odd keys"][""]': 3,
        "empty.obj": {},
        "empty.list": [],
        "nothing": None,
    }
    assert jt("unflatten", flat=flat) == {"document": document}


def test_flatten_paths_work_with_query():
    document = {"a": [{"b.c": [1, 2]}]}
    for path, value in jt("flatten", document=document)["flat"].items():
        assert paths_and_values(jt("query", document=document, path=path)) == [(path, value)]


def test_flatten_array_root_and_empty_root():
    flat = jt("flatten", document=[{"a": 1}, 2])["flat"]
    assert flat == {"[0].a": 1, "[1]": 2}
    assert jt("unflatten", flat=flat) == {"document": [{"a": 1}, 2]}
    assert jt("flatten", document={})["flat"] == {}
    assert jt("unflatten", flat={}) == {"document": {}}


def test_flatten_rejects_scalar_document():
    assert schema_errors("json-tools", "flatten", {"document": 3})


def test_unflatten_accepts_indexes_in_any_order():
    assert jt("unflatten", flat={"a[1]": "y", "a[0]": "x"}) == {"document": {"a": ["x", "y"]}}


@pytest.mark.parametrize(
    "flat,message",
    [
        ({"a": 1, "a.b": 2}, "goes through a value"),
        ({"a.b": 2, "a": 1}, "conflicts"),
        ({"a": 1, '["a"]': 2}, "conflicts"),
        ({"a[0]": 1, "a.b": 2}, "mixes array indexes and object keys"),
        ({"a[0]": 1, "a[2]": 3}, "without gaps"),
        ({"a[*]": 1}, "wildcards"),
        ({"a[-1]": 1}, "negative"),
        ({"": 1}, "empty path"),
        ({"a..b": 1}, "invalid path"),
    ],
)
def test_unflatten_errors(flat, message):
    with pytest.raises(ValueError, match=message):
        jt("unflatten", flat=flat)


def test_diff_reports_added_removed_and_changed_paths():
    result = jt(
        "diff",
        before={"name": "app", "version": 1, "tags": ["a", "b"], "owner": {"id": 7, "team": "x"}},
        after={"name": "app", "version": 2, "tags": ["a"], "owner": {"id": 7}, "public": True},
    )
    assert result == {
        "equal": False,
        "added": [{"path": "public", "value": True}],
        "removed": [{"path": "tags[1]", "value": "b"}, {"path": "owner.team", "value": "x"}],
        "changed": [{"path": "version", "before": 1, "after": 2}],
    }


def test_diff_of_equal_documents():
    document = {"a": [1, {"b": None}], "c": "d"}
    assert jt("diff", before=document, after=copy.deepcopy(document)) == {
        "equal": True, "added": [], "removed": [], "changed": [],
    }


def test_diff_compares_numbers_like_json():
    assert jt("diff", before={"n": 1}, after={"n": 1.0})["equal"] is True
    assert jt("diff", before={"n": 1}, after={"n": True})["changed"] == [
        {"path": "n", "before": 1, "after": True}
    ]
    assert jt("diff", before=[0], after=[False])["changed"] == [{"path": "[0]", "before": 0, "after": False}]


def test_diff_type_change_is_one_change_not_many():
    result = jt("diff", before={"a": {"x": 1}}, after={"a": [1]})
    assert result["changed"] == [{"path": "a", "before": {"x": 1}, "after": [1]}]
    assert result["added"] == result["removed"] == []


def test_diff_of_root_scalars_and_quoted_paths():
    assert jt("diff", before=1, after=2)["changed"] == [{"path": "", "before": 1, "after": 2}]
    assert jt("diff", before={}, after={"a b": 1})["added"] == [{"path": '["a b"]', "value": 1}]


def test_merge_deep_later_documents_win():
    result = jt(
        "merge",
        documents=[
            {"db": {"host": "localhost", "port": 5432}, "debug": True},
            {"db": {"host": "db.internal"}},
            {"debug": False, "db": {"pool": {"size": 5}}},
        ],
    )
    assert result == {
        "document": {"db": {"host": "db.internal", "port": 5432, "pool": {"size": 5}}, "debug": False}
    }


@pytest.mark.parametrize(
    "arrays,expected",
    [
        ("replace", [{"id": 2}, 3]),
        ("concat", [1, {"id": 2}, {"id": 2}, 3]),
        ("union", [1, {"id": 2}, 3]),
    ],
)
def test_merge_array_strategies(arrays, expected):
    documents = [{"list": [1, {"id": 2}]}, {"list": [{"id": 2}, 3]}]
    assert jt("merge", documents=documents, arrays=arrays) == {"document": {"list": expected}}


def test_merge_union_treats_true_and_1_as_different():
    assert jt("merge", documents=[[1], [True, 1.0]], arrays="union") == {"document": [1, True]}


def test_merge_null_handling():
    documents = [{"a": 1, "b": {"c": 2, "d": 3}}, {"a": None, "b": {"d": None}, "e": {"f": None, "g": 1}}]
    assert jt("merge", documents=documents) == {
        "document": {"a": None, "b": {"c": 2, "d": None}, "e": {"f": None, "g": 1}}
    }
    assert jt("merge", documents=documents, nullDeletes=True) == {
        "document": {"b": {"c": 2}, "e": {"g": 1}}
    }


def test_merge_scalar_or_mismatched_types_are_replaced():
    assert jt("merge", documents=[{"a": {"b": 1}}, {"a": [1]}]) == {"document": {"a": [1]}}
    assert jt("merge", documents=[{"a": 1}, "text"]) == {"document": "text"}
    assert jt("merge", documents=[{"only": 1}]) == {"document": {"only": 1}}


def test_merge_does_not_mutate_inputs():
    documents = [{"a": {"b": [1]}, "x": 1}, {"a": {"b": [2], "c": 3}, "x": None}]
    snapshot = copy.deepcopy(documents)
    _, module = load("json-tools")
    module.merge({"documents": documents, "arrays": "concat", "nullDeletes": True}, Ctx())
    assert documents == snapshot


def test_merge_requires_documents():
    assert schema_errors("json-tools", "merge", {"documents": []})
    assert schema_errors("json-tools", "merge", {"documents": [{}], "arrays": "zip"})


def test_sort_keys_recursive_by_default():
    result = jt("sortKeys", document={"b": 1, "a": {"d": [{"z": 1, "y": 2}], "c": 3}})["document"]
    assert list(result) == ["a", "b"]
    assert list(result["a"]) == ["c", "d"]
    assert list(result["a"]["d"][0]) == ["y", "z"]


def test_sort_keys_options():
    document = {"b": {"y": 1, "x": 2}, "a": 1, "C": 0}
    shallow = jt("sortKeys", document=document, recursive=False)["document"]
    assert list(shallow) == ["C", "a", "b"], "code point order puts capitals first"
    assert list(shallow["b"]) == ["y", "x"]
    descending = jt("sortKeys", document=document, descending=True)["document"]
    assert list(descending) == ["b", "a", "C"]
    assert list(descending["b"]) == ["y", "x"]


def test_sort_keys_keeps_array_order_and_scalars():
    assert jt("sortKeys", document=[3, 1, 2]) == {"document": [3, 1, 2]}
    assert jt("sortKeys", document="x") == {"document": "x"}


# --------------------------------------------------------------------------
# stats
# --------------------------------------------------------------------------


def st(action, **params):
    return call("stats", action, params)


def test_describe_sample():
    result = st("describe", values=[2, 4, 4, 4, 5, 5, 7, 9], percentiles=[0, 10, 100, 12.5])
    assert result["count"] == 8
    assert result["sum"] == 40
    assert result["mean"] == 5
    assert result["median"] == 4.5
    assert result["modes"] == [4]
    assert (result["min"], result["max"], result["range"]) == (2, 9, 7)
    assert result["variance"] == pytest.approx(32 / 7)
    assert result["stdev"] == pytest.approx(math.sqrt(32 / 7))
    assert result["quartiles"] == {"q1": 4, "q2": 4.5, "q3": 5.5}
    assert result["iqr"] == 1.5
    assert result["percentiles"] == pytest.approx({"0": 2, "10": 3.4, "100": 9, "12.5": 3.75})
    assert result["population"] is False


def test_describe_population():
    result = st("describe", values=[2, 4, 4, 4, 5, 5, 7, 9], population=True)
    assert result["variance"] == pytest.approx(4)
    assert result["stdev"] == pytest.approx(2)
    assert result["population"] is True


def test_describe_quartiles_match_statistics_inclusive_method():
    values = [12.5, 3, 7.25, 9, 15, 3, 21, -4]
    result = st("describe", values=values)
    expected = statistics.quantiles(values, n=4, method="inclusive")
    assert [result["quartiles"][q] for q in ("q1", "q2", "q3")] == pytest.approx(expected)


def test_describe_single_value():
    result = st("describe", values=[5])
    assert result["mean"] == result["median"] == 5
    assert result["variance"] is None and result["stdev"] is None
    assert result["modes"] == []
    assert st("describe", values=[5], population=True)["variance"] == 0


def test_describe_modes():
    assert st("describe", values=[1, 2, 3])["modes"] == []
    assert st("describe", values=[3, 1, 3, 1, 2])["modes"] == [1, 3]


def test_describe_rejects_bad_values():
    assert schema_errors("stats", "describe", {"values": []})
    assert schema_errors("stats", "describe", {"values": [1, "2"]})
    assert schema_errors("stats", "describe", {"values": [1], "percentiles": [101]})
    with pytest.raises(ValueError, match="finite"):
        st("describe", values=[1, float("nan")])


def test_histogram_counts_with_inclusive_last_bin():
    result = st("histogram", values=[1, 2, 2, 3, 3, 3, 4, 4, 5], bins=4)
    assert result["bins"] == [
        {"start": 1, "end": 2, "count": 1},
        {"start": 2, "end": 3, "count": 2},
        {"start": 3, "end": 4, "count": 3},
        {"start": 4, "end": 5, "count": 3},
    ]
    assert result["binWidth"] == 1
    assert (result["total"], result["outside"]) == (9, 0)


def test_histogram_explicit_range_counts_outside_values():
    result = st("histogram", values=[-1, 0, 19.99, 20, 100, 100.5], bins=5, min=0, max=100)
    assert [b["count"] for b in result["bins"]] == [2, 1, 0, 0, 1]
    assert [b["start"] for b in result["bins"]] == [0, 20, 40, 60, 80]
    assert result["outside"] == 2


def test_histogram_float_values_land_in_every_bin_once():
    values = [i / 10 for i in range(11)]
    result = st("histogram", values=values, bins=10)
    assert sum(b["count"] for b in result["bins"]) == 11
    assert result["bins"][-1]["end"] == 1.0


def test_histogram_constant_values_widen_range():
    result = st("histogram", values=[3, 3, 3], bins=2)
    assert result["bins"] == [
        {"start": 2.5, "end": 3.0, "count": 0},
        {"start": 3.0, "end": 3.5, "count": 3},
    ]


def test_histogram_errors():
    with pytest.raises(ValueError, match="must not be less than min"):
        st("histogram", values=[1, 2], min=5, max=1)
    assert schema_errors("stats", "histogram", {"values": [1], "bins": 0})


def test_correlation_pearson():
    assert st("correlation", x=[1, 2, 3, 4], y=[2, 4, 6, 8])["coefficient"] == pytest.approx(1)
    assert st("correlation", x=[1, 2, 3, 4], y=[8, 6, 4, 2])["coefficient"] == pytest.approx(-1)
    result = st("correlation", x=[1, 2, 3, 4, 5], y=[2, 4, 5, 4, 5])
    assert result == {"method": "pearson", "n": 5, "coefficient": pytest.approx(math.sqrt(0.6))}


def test_correlation_spearman_captures_monotonic_relationships():
    x, y = [1, 2, 3, 4, 5], [1, 4, 9, 16, 1000]
    assert st("correlation", x=x, y=y, method="spearman")["coefficient"] == pytest.approx(1)
    assert st("correlation", x=x, y=y)["coefficient"] < 0.9


def test_correlation_spearman_averages_tied_ranks():
    assert load("stats")[1]._ranks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]
    result = st("correlation", x=[1, 2, 2, 3], y=[1, 3, 2, 4], method="spearman")
    assert result["coefficient"] == pytest.approx(math.sqrt(0.9))


@pytest.mark.parametrize(
    "x,y,message",
    [
        ([1, 2, 3], [1, 2], "same length"),
        ([1, 1, 1], [1, 2, 3], "all x values are equal"),
        ([1, 2, 3], [4, 4, 4], "all y values are equal"),
        ([1, float("inf")], [1, 2], "finite"),
    ],
)
def test_correlation_errors(x, y, message):
    with pytest.raises(ValueError, match=message):
        st("correlation", x=x, y=y)


def test_correlation_needs_two_pairs():
    assert schema_errors("stats", "correlation", {"x": [1], "y": [1]})


def test_linear_regression_exact_line_with_predictions():
    result = st("linearRegression", x=[1, 2, 3, 4], y=[3, 5, 7, 9], predict=[0, 10])
    assert result == {
        "slope": pytest.approx(2),
        "intercept": pytest.approx(1),
        "rSquared": pytest.approx(1),
        "n": 4,
        "predictions": [{"x": 0, "y": pytest.approx(1)}, {"x": 10, "y": pytest.approx(21)}],
    }


def test_linear_regression_noisy_data():
    result = st("linearRegression", x=[1, 2, 3, 4, 5], y=[2, 4, 5, 4, 5])
    assert result["slope"] == pytest.approx(0.6)
    assert result["intercept"] == pytest.approx(2.2)
    assert result["rSquared"] == pytest.approx(0.6)
    assert "predictions" not in result


def test_linear_regression_constant_y_is_a_perfect_flat_fit():
    result = st("linearRegression", x=[1, 2, 3], y=[4, 4, 4])
    assert (result["slope"], result["intercept"], result["rSquared"]) == (0, 4, 1)


def test_linear_regression_errors():
    with pytest.raises(ValueError, match="all x values are equal"):
        st("linearRegression", x=[2, 2, 2], y=[1, 2, 3])
    with pytest.raises(ValueError, match="same length"):
        st("linearRegression", x=[1, 2], y=[1, 2, 3])


def test_moving_average_simple():
    result = st("movingAverage", values=[10, 12, 14, 13, 15, 18, 20], window=3)
    assert result["method"] == "simple"
    assert result["offset"] == 2
    assert result["averages"] == pytest.approx([12, 13, 14, 46 / 3, 53 / 3])


def test_moving_average_window_edges():
    assert st("movingAverage", values=[1, 2, 3], window=1)["averages"] == [1, 2, 3]
    assert st("movingAverage", values=[1, 2, 3], window=3)["averages"] == [2]
    with pytest.raises(ValueError, match="larger than the number of values"):
        st("movingAverage", values=[1, 2], window=3)


def test_moving_average_exponential():
    result = st("movingAverage", values=[10, 12, 14, 13], window=3, method="exponential")
    # alpha = 2 / (3 + 1) = 0.5
    assert result["averages"] == pytest.approx([10, 11, 12.5, 12.75])
    assert result["offset"] == 0
    assert st("movingAverage", values=[7], window=5, method="exponential")["averages"] == [7]
