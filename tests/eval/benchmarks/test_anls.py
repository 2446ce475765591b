"""ANLS, the DocVQA / InfographicVQA rule, against values worked out by hand from the official script
(normalise: strip, lower-case, collapse whitespace; NL = distance of the normalised strings / the longer RAW
upper-cased length; 1 - min NL over the gold answers, 0 when below 0.5)."""

import pytest

from llava.eval.core.anls import anls, levenshtein, normalize, normalized_distance, question_score


def test_normalize_lowercases_strips_and_collapses_every_kind_of_whitespace():
    assert normalize("  New \t York\n") == "new york"
    assert normalize("NEW\u00a0YORK") == "new york"  # a no-break space is whitespace to str.split
    assert normalize("   ") == ""


@pytest.mark.parametrize("a, b, distance", [
    ("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("flaw", "lawn", 2), ("cat", "cat", 0),
    ("cat", "cake", 2), ("dog", "cake", 4),
])
def test_levenshtein(a, b, distance):
    assert levenshtein(a, b) == distance == levenshtein(b, a)


def test_exactly_half_the_characters_wrong_stays_at_the_threshold():
    # NL = 1/2 exactly: 1 - 0.5 = 0.5 is not below the threshold (the script zeroes `< 0.5` only).
    assert question_score("ax", ["ab"]) == 0.5
    assert question_score("abxy", ["abcd"]) == 0.5
    assert question_score("cake", ["CAT"]) == 0.5  # two edits over four characters
    # Just past it: 2 of 3, 3 of 5 characters wrong.
    assert question_score("axy", ["abc"]) == 0.0
    assert question_score("abxyz", ["abcde"]) == 0.0
    # Above it, the similarity itself.
    assert question_score("abcdx", ["abcde"]) == pytest.approx(0.8)


def test_the_threshold_can_be_set():
    assert question_score("abcdx", ["abcde"], threshold=0.9) == 0.0
    assert question_score("abcdx", ["abcde"], threshold=0.8) == pytest.approx(0.8)


def test_the_best_gold_answer_counts():
    assert question_score("cat", ["dog", "CAT"]) == 1.0
    # "cats": 1 - 1/4 against "cat", 1 - 2/6 against "catsup": the larger.
    assert question_score("cats", ["catsup", "cat"]) == pytest.approx(0.75)
    assert question_score("edward  shannon", ["Edward R. Shannon", "Edward Shannon"]) == 1.0
    with pytest.raises(ValueError, match="at least one gold answer"):
        question_score("x", [])


def test_empty_predictions():
    assert question_score("", ["cat"]) == 0.0  # 3 edits over 3 characters
    assert question_score("", [""]) == 1.0  # both empty: NL is 0 by definition
    # Whitespace only: normalised to "" (one edit to "a") but divided by the raw length 3, as the official
    # script does: 1 - 1/3.
    assert question_score("   ", ["a"]) == pytest.approx(2 / 3)


def test_case_and_whitespace_do_not_matter():
    assert question_score("  new   YORK ", ["New York"]) == 1.0
    assert question_score("Cat", ["CAT"]) == 1.0


def test_lengths_are_the_raw_strings_not_the_normalised_ones():
    # " ca " normalises to "ca", one edit from "cat"; the official script divides by len(" CA ") = 4, not 3.
    assert normalized_distance("cat", " ca ") == pytest.approx(1 / 4)
    assert question_score(" ca ", ["cat"]) == pytest.approx(0.75)


def test_unicode():
    assert question_score("école", ["ÉCOLE"]) == 1.0
    # One edit (ß -> s) over the upper-cased length: "STRASSE" has 7 characters, so 1 - 1/7 (not 1 - 1/6).
    assert question_score("Strase", ["Straße"]) == pytest.approx(6 / 7)
    assert question_score("東京", ["東京都"]) == pytest.approx(2 / 3)


def test_anls_is_the_mean_over_questions():
    assert anls([("cat", ["CAT"]), ("dog", ["CAT"]), ("ax", ["ab"])]) == pytest.approx((1 + 0 + 0.5) / 3)
    assert anls([]) == 0.0
