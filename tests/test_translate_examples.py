"""Nearest few-shot examples and the choice among candidate translations (no model: fast)."""

from __future__ import annotations

import json

from llamadesk.app.translate import SegmentTranslator, choose_strategy, resolve_language
from llamadesk.app.translate.candidates import Candidate, char_f_score, choose
from llamadesk.app.translate.nearest_examples import CORPUS_PATH, ExampleCorpus, shipped_corpus, words
from tests.translate_fakes import ScriptedGenerator

EN, FR = resolve_language("en"), resolve_language("fr")
FEW_SHOT = choose_strategy({}, has_chat_template=False)
ROWS = [
    {"en": "Save the file", "fr": "Enregistrer le fichier"},
    {"en": "Delete the selected users", "fr": "Supprimer les utilisateurs sélectionnés"},
    {"en": "The password is too short", "fr": "Le mot de passe est trop court"},
    {"en": "Change password", "fr": "Modifier le mot de passe"},
    {"en": "Welcome, %(name)s", "fr": "Bienvenue, %(name)s"},
    {"en": "Logged in as %s", "fr": "Connecté en tant que"},  # the target lost its placeholder
    {"en": "Only English here"},
]


def test_words_fold_case_plurals_and_ignore_markers():
    assert words("Delete ⟦1⟧ Users and FILES") == ["delete", "user", "and", "file"]


def test_the_nearest_sentences_share_the_rare_words_and_come_closest_last():
    corpus = ExampleCorpus(ROWS)
    nearest = corpus.nearest("Your password was changed", "en", "fr", k=2)
    assert nearest == [("The password is too short", "Le mot de passe est trop court"), ROWS_PAIR_CHANGE]
    assert corpus.nearest("Good morning", "en", "fr") == []  # nothing shared: no examples at all
    assert corpus.nearest("Save it", "en", "xx") == []  # no sentence in that language


ROWS_PAIR_CHANGE = ("Change password", "Modifier le mot de passe")


def test_examples_carry_markers_like_the_segment_and_bad_pairs_are_left_out():
    corpus = ExampleCorpus(ROWS)
    assert corpus.nearest("Welcome back, ⟦1⟧", "en", "fr") == [("Welcome, ⟦1⟧", "Bienvenue, ⟦1⟧")]
    assert corpus.nearest("Logged in as ⟦1⟧", "en", "fr") == []  # its target lost %s


def test_the_shipped_corpus_has_the_languages_and_leaves_the_benchmark_messages_out():
    data = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))
    assert "BSD-3-Clause" in data["licence"] and "core catalog" in data["left_out"]
    english = {row["en"] for row in data["rows"]}
    assert sum(1 for row in data["rows"] if "fr" in row) > 300
    bench = [json.loads(line) for line in open("bench/data/translate_eval.jsonl", encoding="utf-8")]
    assert not english & {row["source"] for row in bench}
    assert shipped_corpus().nearest("Change my password", "en", "de")


def test_char_f_score_is_chrf_of_one_pair():
    assert char_f_score("le chat", "le chat") == 1.0
    assert char_f_score("abc", "xyz") == 0.0
    assert 0 < char_f_score("le chat noir", "le chat") < 1


def test_choice_prefers_fewer_problems_then_the_target_language_then_consensus():
    a = Candidate("Enregistrer le fichier", (), False, -0.5)
    b = Candidate("Enregistrer le document", (), False, -0.5)
    c = Candidate("Sauver fichier", (), False, -0.5)
    assert choose([a, b, c]) == 0  # the one the other two nearly agree with
    assert choose([Candidate("", ("empty output",), False, None), b, c]) in (1, 2)
    english = Candidate("Save the file now", (), True, -0.1)
    assert choose([english, Candidate("Enregistrer", (), False, -2.0), english]) == 1


def test_the_translator_samples_more_answers_of_the_same_prompt_and_keeps_the_consensus():
    sampled = {1: " Modifier le mot de passe\n", 2: " Modifier votre mot de passe\n", 3: " Change my password\n"}
    generator = ScriptedGenerator(lambda prompt: " Passe mot changer\n")  # the greedy answer: the odd one out
    generator.samples = lambda prompt, sampling: sampled[sampling.seed]
    translator = SegmentTranslator(generator, FEW_SHOT, candidates=4)
    result = translator.translate("Change my password", EN, FR)
    assert len(generator.prompts) == 1 and len(generator.sampled) == 1
    prompt, samplings = generator.sampled[0]
    assert prompt == generator.prompts[0], "the samples answer the greedy answer's own prompt"
    assert [s.seed for s in samplings] == [1, 2, 3] and all(s.temperature > 0 for s in samplings)
    # The English copy is a problem; of the rest, the two that nearly agree beat the odd one out.
    assert result.translation in ("Modifier le mot de passe", "Modifier votre mot de passe")
    # Without candidates: one greedy answer, no samples.
    generator = ScriptedGenerator(lambda prompt: " Passe mot changer\n")
    result = SegmentTranslator(generator, FEW_SHOT).translate("Change my password", EN, FR)
    assert not generator.sampled and result.translation == "Passe mot changer"


def test_some_candidates_answer_the_prompt_with_the_nearest_examples():
    """With a corpus for the candidates, 3 of 5 answer a second prompt that shows the corpus's
    nearest sentences (greedy first, then sampled), and the consensus can keep one of them. Only
    two sentences of this corpus are near, so the third prompt (five examples) would be the second
    again: its candidate goes to the second, with a further seed."""
    from llamadesk.app.translate.generation import GREEDY

    def sampled(prompt, sampling):
        if "Le mot de passe est trop court" in prompt.text:  # the second prompt's answers agree
            return " Modifier le mot de passe\n"
        return {1: " Changer mot passe\n", 2: " Change my password\n"}[sampling.seed]

    generator = ScriptedGenerator(lambda prompt: " Passe mot changer\n")
    generator.samples = sampled
    translator = SegmentTranslator(generator, FEW_SHOT, candidates=5, candidate_examples=ExampleCorpus(ROWS))
    result = translator.translate("Change my password", EN, FR)
    (usual, usual_samplings), (near, near_samplings) = generator.sampled
    assert generator.sample_sets == [2]  # both prompts' answers asked at once (decoded side by side)
    assert usual == generator.prompts[0] and "Le mot de passe est trop court" not in usual.text
    assert [s.seed for s in usual_samplings] == [1]
    assert "Le mot de passe est trop court" in near.text
    assert near.text.splitlines()[-2:] == usual.text.splitlines()[-2:]  # the same segment asked
    assert near_samplings[0] == GREEDY and [s.seed for s in near_samplings[1:]] == [1, 2]
    assert result.translation == "Modifier le mot de passe"
    # A segment no corpus sentence is near: all five answer the usual prompt.
    generator = ScriptedGenerator(lambda prompt: " Bonjour\n")
    SegmentTranslator(generator, FEW_SHOT, candidates=5, candidate_examples=ExampleCorpus(ROWS)).translate(
        "Good morning", EN, FR
    )
    ((_, samplings),) = generator.sampled
    assert [s.seed for s in samplings] == [1, 2, 3, 4]


def test_twenty_candidates_answer_three_prompts_with_none_three_and_five_nearest_examples():
    """--candidates 20 with a corpus of many near sentences: 8 answer the usual prompt (its greedy
    answer and 7 sampled), 6 a prompt with the three nearest sentences, 6 one with the five
    nearest (greedy, then 5 sampled each), all asked at once."""
    from llamadesk.app.translate.candidates import candidate_split
    from llamadesk.app.translate.generation import GREEDY

    near_rows = [
        {"en": f"The password {word} is too short", "fr": f"Le mot de passe {word} est trop court"}
        for word in ("one", "two", "three", "four", "five", "six")
    ]
    generator = ScriptedGenerator(lambda prompt: " Modifier mon mot de passe\n")
    translator = SegmentTranslator(generator, FEW_SHOT, candidates=20, candidate_examples=ExampleCorpus(near_rows))
    assert translator.translate("Change my password", EN, FR).translation == "Modifier mon mot de passe"
    assert candidate_split(20) == [8, 6, 6] and generator.sample_sets == [3]
    (usual, usual_samplings), (three, three_samplings), (five, five_samplings) = generator.sampled
    assert [
        usual.text.count("Le mot de passe"),
        three.text.count("Le mot de passe"),
        five.text.count("Le mot de passe"),
    ] == [0, 3, 5]
    assert [s.seed for s in usual_samplings] == [1, 2, 3, 4, 5, 6, 7]
    for samplings in (three_samplings, five_samplings):
        assert samplings[0] == GREEDY and [s.seed for s in samplings[1:]] == [1, 2, 3, 4, 5]


def test_nearest_examples_come_after_the_fixed_ones():
    generator = ScriptedGenerator(lambda prompt: " Modifier mon mot de passe\n")
    SegmentTranslator(generator, FEW_SHOT, ExampleCorpus(ROWS)).translate("Change my password", EN, FR)
    text = generator.prompts[0].text
    assert text.index("Save changes") < text.index("Change password") < text.index("Change my password")


def test_the_candidates_split_over_the_prompts_adds_up_and_favours_the_usual_prompt():
    from llamadesk.app.translate.candidates import CANDIDATE_PROMPTS, MAX_CANDIDATES, candidate_split

    assert candidate_split(2) == [1, 1, 0] and candidate_split(3) == [1, 1, 1]
    for n in range(2, MAX_CANDIDATES + 1):
        counts = candidate_split(n)
        assert len(counts) == len(CANDIDATE_PROMPTS) and sum(counts) == n, (n, counts)
        assert counts[0] == max(counts) and counts[0] >= 1, (n, counts)
        assert all(c >= 1 for c in counts) or n < len(CANDIDATE_PROMPTS), (n, counts)
