"""The `json-tools` example plugin, handler by handler (see example_plugins.py
for how it is loaded and called)."""

import copy

import pytest

from sandbox.child.runtime import InvalidParams
from tests.plugins.example_plugins import Ctx, call, load, schema_errors


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
    with pytest.raises(InvalidParams, match="invalid path"):
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
    with pytest.raises(InvalidParams, match=message):
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


def test_a_refusal_names_the_path_in_its_details():
    with pytest.raises(InvalidParams, match="conflicts with another path") as refused:
        jt("unflatten", flat={"a.b": 2, "a": 1})
    assert refused.value.details == {"path": "a"}


def nested(depth):
    """A document of `depth` levels, the root being the first."""
    document = 1
    for _ in range(depth - 1):
        document = {"a": document}
    return document


@pytest.mark.parametrize(
    "action,params",
    [
        ("query", lambda doc: {"document": doc, "path": "a"}),
        ("flatten", lambda doc: {"document": doc}),
        ("diff", lambda doc: {"before": doc, "after": 1}),
        ("merge", lambda doc: {"documents": [{}, doc]}),
        ("sortKeys", lambda doc: {"document": doc}),
        ("unflatten", lambda doc: {"flat": {"a": doc}}),
    ],
)
def test_documents_nested_too_deep_are_refused(action, params):
    # Deeper documents would make the host refuse the result (over 200
    # levels) or the handler overflow the stack: the plugin's error, not
    # the caller's, without this check.
    limit = load("json-tools")[1].MAX_DEPTH
    depth_allowed = limit - 1 if action == "unflatten" else limit
    jt(action, **params(nested(depth_allowed)))
    with pytest.raises(InvalidParams, match=f"nested deeper than {limit} levels"):
        jt(action, **params(nested(depth_allowed + 1)))


def test_unflatten_refuses_paths_deeper_than_the_limit():
    limit = load("json-tools")[1].MAX_DEPTH
    assert jt("unflatten", flat={".".join(["a"] * (limit - 1)): 1})["document"]
    with pytest.raises(InvalidParams, match="nested deeper"):
        jt("unflatten", flat={".".join(["a"] * limit): 1})

