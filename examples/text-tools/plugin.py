"""Text utilities: counting, slugs, case conversion, readability and extraction.

Everything here is pure string processing with the standard library, so every
action is deterministic and its result can be cached on its parameters. The
one input refused (`readability` of a text without words) is refused with
`ctx.reject`: 400 VALIDATION_ERROR for the caller.
"""

import re
import unicodedata
from collections import Counter

# A word is a run of letters/digits that may be joined by an apostrophe or a
# hyphen, so "don't" and "well-known" count as one word, as a reader would.
_WORD_RE = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")

# Sentence ends need trailing whitespace (or the end of the text) so that
# "3.14" or "example.com" do not split a sentence; closing quotes and brackets
# after the punctuation still belong to the sentence that just ended.
_SENTENCE_END_RE = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s|$)")

_PARAGRAPH_BREAK_RE = re.compile(r"\n\s*\n")

# Small, common English function words; they dominate any frequency list
# without saying anything about the text.
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because
    been before being below between both but by can could did do does doing
    down during each few for from further had has have having he her here hers
    herself him himself his how i if in into is it its itself just me more
    most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why
    will with would you your yours yourself yourselves""".split()
)

# Letters that Unicode does not decompose into ASCII but that have a
# conventional Latin spelling; without these "straße" would become "strae".
_TRANSLITERATIONS = str.maketrans(
    {
        "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o",
        "Ø": "O", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "Th",
    }
)

_URL_RE = re.compile(r"(?:\bhttps?://|(?<![\w@.])www\.)[^\s<>\"'`]+", re.IGNORECASE)
_EMAIL_RE = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}\b"
)
# The look-behinds stop "a@b" inside an address or "#x" inside "&#x" from
# being read as a mention or hashtag; a hashtag must contain a letter so that
# "#1" (a ranking) is not one.
_MENTION_RE = re.compile(r"(?<![\w@.])@\w+")
_HASHTAG_RE = re.compile(r"(?<![\w#&])#\w*[^\W\d_]\w*")

_EXTRACT_KINDS = ("emails", "urls", "hashtags", "mentions")


def _words(text):
    return _WORD_RE.findall(text)


def _normalise_word(word):
    return word.lower().replace("\u2019", "'")


def _count_sentences(text):
    return sum(1 for chunk in _SENTENCE_END_RE.split(text) if _WORD_RE.search(chunk))


def word_count(params, ctx):
    """Count what editors and form limits usually ask about.

    Characters are counted after NFC normalisation so "é" counts once whether
    it arrived precomposed or as "e" plus a combining accent.
    """
    text = unicodedata.normalize("NFC", params["text"])
    top = params.get("top", 10)
    words = _words(text)
    frequencies = Counter(_normalise_word(word) for word in words)
    unique_words = len(frequencies)
    if params.get("excludeStopwords", False):
        for stopword in _STOPWORDS & frequencies.keys():
            del frequencies[stopword]
    # Ties are broken alphabetically so the result does not depend on the
    # order in which words first appear.
    ranked = sorted(frequencies.items(), key=lambda item: (-item[1], item[0]))
    return {
        "words": len(words),
        "uniqueWords": unique_words,
        "characters": len(text),
        "charactersNoSpaces": sum(1 for char in text if not char.isspace()),
        "lines": len(text.splitlines()),
        "sentences": _count_sentences(text),
        "paragraphs": sum(1 for block in _PARAGRAPH_BREAK_RE.split(text) if block.strip()),
        "averageWordLength": round(sum(map(len, words)) / len(words), 2) if words else 0,
        "topWords": [{"word": word, "count": count} for word, count in ranked[:top]],
    }


def slugify(params, ctx):
    """Make a URL-safe slug.

    By default the slug is plain ASCII because that survives every URL
    encoder and file system; allowUnicode keeps letters from other scripts,
    which would otherwise vanish entirely.
    """
    separator = params.get("separator", "-")
    max_length = params.get("maxLength")
    text = unicodedata.normalize("NFKC", params["text"]).translate(_TRANSLITERATIONS)
    if not params.get("allowUnicode", False):
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[^\W_]+", text.lower())
    slug = separator.join(words)
    if max_length is not None and len(slug) > max_length:
        # Drop whole words so the slug stays readable; only a first word that
        # is longer than the limit on its own gets cut mid-word.
        kept = []
        for word in words:
            if len(separator.join(kept + [word])) > max_length:
                break
            kept.append(word)
        slug = separator.join(kept) if kept else words[0][:max_length]
    return {"slug": slug}


def _identifier_words(text):
    """Split text into words for identifier-style cases.

    Besides spaces and punctuation, case changes are boundaries, so that
    "parseHTTPResponse" converts as parse/HTTP/Response rather than one word.
    Digits stay attached to the word before them ("utf8", "v2").
    """
    words = []
    for chunk in re.findall(r"[^\W_]+", text.replace("'", "").replace("\u2019", "")):
        start = 0
        for i in range(1, len(chunk)):
            previous, current = chunk[i - 1], chunk[i]
            following = chunk[i + 1] if i + 1 < len(chunk) else ""
            lower_to_upper = current.isupper() and (previous.islower() or previous.isdigit())
            acronym_end = current.isupper() and previous.isupper() and following.islower()
            if lower_to_upper or acronym_end:
                words.append(chunk[start:i])
                start = i
        words.append(chunk[start:])
    return [word.lower() for word in words]


_IDENTIFIER_CASES = {
    "snake": lambda words: "_".join(words),
    "kebab": lambda words: "-".join(words),
    "constant": lambda words: "_".join(words).upper(),
    "camel": lambda words: "".join(words[:1] + [word.capitalize() for word in words[1:]]),
    "pascal": lambda words: "".join(word.capitalize() for word in words),
}


def change_case(params, ctx):
    """Convert prose or identifiers between common casing conventions.

    upper, lower and title keep the original spacing and punctuation; the
    identifier styles rebuild the text from its words.
    """
    text, case = params["text"], params["case"]
    if case == "upper":
        result = text.upper()
    elif case == "lower":
        result = text.lower()
    elif case == "title":
        # str.title() would turn "don't" into "Don'T"; capitalising whole
        # words from _WORD_RE avoids that.
        result = _WORD_RE.sub(lambda match: match[0][:1].upper() + match[0][1:].lower(), text)
    else:
        result = _IDENTIFIER_CASES[case](_identifier_words(text))
    return {"result": result}


def _syllables(word):
    """Estimate syllables from vowel groups.

    A silent final "e" and a non-syllabic "-ed" are discounted; English
    spelling makes any rule approximate, but readability formulas only need
    a good average over many words.
    """
    word = _normalise_word(word).replace("'", "")
    count = len(re.findall(r"[aeiouy]+", word))
    if count > 1 and word.endswith("e") and not word.endswith("ee"):
        consonant_le = word.endswith("le") and word[-3] not in "aeiouy"
        if not consonant_le:
            count -= 1
    elif count > 1 and word.endswith("ed") and word[-3] not in "td":
        count -= 1
    return max(1, count)


# Flesch's own interpretation bands, checked from the easiest down.
_READING_LEVELS = (
    (90, "very easy"),
    (80, "easy"),
    (70, "fairly easy"),
    (60, "standard"),
    (50, "fairly difficult"),
    (30, "difficult"),
)


def readability(params, ctx):
    """Score English prose with Flesch reading ease and Flesch-Kincaid grade."""
    text = params["text"]
    words = _words(text)
    if not words:
        ctx.reject("text contains no words to score", {"param": "text"})
    sentences = _count_sentences(text)
    syllables = sum(map(_syllables, words))
    words_per_sentence = len(words) / sentences
    syllables_per_word = syllables / len(words)
    ease = round(206.835 - 1.015 * words_per_sentence - 84.6 * syllables_per_word, 2)
    grade = round(0.39 * words_per_sentence + 11.8 * syllables_per_word - 15.59, 2)
    level = next((label for floor, label in _READING_LEVELS if ease >= floor), "very difficult")
    return {
        "words": len(words),
        "sentences": sentences,
        "syllables": syllables,
        "wordsPerSentence": round(words_per_sentence, 2),
        "syllablesPerWord": round(syllables_per_word, 2),
        "fleschReadingEase": ease,
        "fleschKincaidGrade": grade,
        "level": level,
    }


def _trim_url(url):
    """Drop punctuation that ends the surrounding sentence, not the URL.

    A closing bracket is kept when it balances one inside the URL, as in
    https://en.wikipedia.org/wiki/Python_(programming_language).
    """
    while url:
        last = url[-1]
        unbalanced = (last == ")" and url.count(")") > url.count("(")) or (
            last == "]" and url.count("]") > url.count("[")
        )
        if last in ".,;:!?*" or unbalanced:
            url = url[:-1]
        else:
            break
    return url


def extract(params, ctx):
    """Pull emails, URLs, hashtags and @mentions out of free text.

    URLs and then emails are blanked out once found so that their fragments
    ("page#section", "user@host") are not reported again as hashtags or
    mentions. Results keep the order of first appearance.
    """
    kinds = params.get("kinds", list(_EXTRACT_KINDS))
    text = params["text"]
    urls = [_trim_url(url) for url in _URL_RE.findall(text)]
    text = _URL_RE.sub(" ", text)
    emails = _EMAIL_RE.findall(text)
    text = _EMAIL_RE.sub(" ", text)
    found = {
        "emails": emails,
        "urls": urls,
        "hashtags": _HASHTAG_RE.findall(text),
        "mentions": _MENTION_RE.findall(text),
    }
    if params.get("unique", True):
        found = {kind: list(dict.fromkeys(items)) for kind, items in found.items()}
    return {kind: found[kind] for kind in kinds}
