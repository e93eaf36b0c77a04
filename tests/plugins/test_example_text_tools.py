"""The `text-tools` example plugin, handler by handler (see example_plugins.py
for how it is loaded and called)."""

import pytest

from sandbox.child.runtime import InvalidParams
from tests.plugins.example_plugins import call, load, schema_errors


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
    with pytest.raises(InvalidParams, match="no words"):
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
