"""EvalAI answer normalization and VQA soft accuracy against hand-computed official results."""

import random

import pytest

from llava.eval.core.m4c_evaluator import EvalAIAnswerProcessor, TextVQAAccuracyEvaluator, leave_one_out_scores


@pytest.mark.parametrize("raw, expected", [
    ("Two", "2"),                   # number words -> digits, after lower-casing
    ("ten dollars", "10 dollars"),
    ("none", "0"),
    ("the dog.", "dog"),            # final period stripped, article dropped
    ("An apple", "apple"),
    ("a", ""),                      # an answer that is only an article vanishes
    ("yes,", "yes"),                # commas dropped by word_tokenize
    ("Yes", "yes"),
    ("dont", "don't"),              # contractions restored
    ("isnt it", "isn't it"),
    ("It's red", "it 's red"),      # "'s" split off, apostrophe kept
    ("t-shirt", "t shirt"),         # a mark inside a word becomes a space...
    ("hello - world", "hello world"),  # ...one next to a space is deleted
    ("3.5", "3.5"),                 # a period before a digit is kept
    ("e.g. this", "eg this"),
    ("What?!", "what"),
    ("  big\ncat\t", "big cat"),
])
def test_normalization(raw, expected):
    assert EvalAIAnswerProcessor()(raw) == expected


def test_at_most_32_periods_are_stripped():
    # The official call passes re.UNICODE (== 32) as the `count` of re.sub: 40 periods leave 8.
    assert EvalAIAnswerProcessor()("x" + "." * 40 + "y") == "x" + "." * 8 + "y"


def test_equal_after_normalization():
    p = EvalAIAnswerProcessor()
    assert p("Two") == p("2")
    assert p("the dog.") == p("dog")
    assert p("yes,") == p("Yes")


def literal_leave_one_out(answers, candidate):
    """The official loop, written out: drop each human in turn, min(1, matches / 3), average."""
    accs = []
    for i in range(len(answers)):
        others = answers[:i] + answers[i + 1:]
        accs.append(min(1.0, sum(a == candidate for a in others) / 3))
    return sum(accs) / len(accs)


@pytest.mark.parametrize("matching, expected", [
    (0, 0.0),
    # 1 of 10: the 9 subsets without that human each see 1 match -> 1/3; the one without him sees 0.
    # (9 * 1/3 + 1 * 0) / 10 = 3 / 10 = 0.3
    (1, 0.3),
    # 2 of 10: 8 subsets see 2 -> 2/3, 2 subsets see 1 -> 1/3: (16/3 + 2/3) / 10 = 0.6
    (2, 0.6),
    # 3 of 10: 7 subsets see 3 -> 1, 3 subsets see 2 -> 2/3: (7 + 2) / 10 = 0.9
    (3, 0.9),
    (4, 1.0),                       # every subset still sees >= 3
])
def test_soft_accuracy_with_few_matching_humans(matching, expected):
    gts = ["red"] * matching + ["blue"] * (10 - matching)
    assert TextVQAAccuracyEvaluator().score("Red.", gts) == pytest.approx(expected)


def test_closed_form_equals_the_literal_loop():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(2, 12)
        answers = [rng.choice("xyzw") for _ in range(n)]
        scores = leave_one_out_scores(answers)
        for candidate in set(answers):
            assert scores[candidate] == pytest.approx(literal_leave_one_out(answers, candidate))


def test_ground_truths_are_normalized_too():
    # "two", "Two" and "2" are the same answer: 3 of 10 humans -> 0.9
    gts = ["two", "Two", "2"] + ["3"] * 7
    assert TextVQAAccuracyEvaluator().score("2", gts) == pytest.approx(0.9)


def test_eval_pred_list_averages():
    pred_list = [
        {"pred_answer": "Nike.", "gt_answers": ["nike"] * 10},                 # 1.0
        {"pred_answer": "RED", "gt_answers": ["red"] + ["blue"] * 9},         # 0.3
        {"pred_answer": "green", "gt_answers": ["red"] + ["blue"] * 9},       # 0.0
    ]
    assert TextVQAAccuracyEvaluator().eval_pred_list(pred_list) == pytest.approx(1.3 / 3)
