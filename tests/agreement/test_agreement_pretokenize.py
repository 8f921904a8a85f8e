"""Splitting untokenized sentences the way the training corpus was, read off the vocabulary."""

from lstm_lm.agreement.pretokenize import CorpusSplitter, word_splitter
from lstm_lm.data.tokenizers import CharTokenizer, WordTokenizer

PTB_LIKE = {"<unk>", "<eos>", "the", "dogs", "are", "n't", "here", "'s", "N", "$", "mr.", "role-playing", "dog",
            "ca", "wo", "say", "no"}
WIKITEXT_LIKE = {"<unk>", "<eos>", "The", "the", "London", "dogs", "aren", "'t", "here", ".", ",", "@-@", "@,@",
                 "@.@", "1", "000", "role", "playing", "dog", "'s", "can", "won"}


def test_ptb_convention_lowercases_drops_punctuation_and_writes_numbers_as_n():
    split = CorpusSplitter(PTB_LIKE, tokenizer_lowercases=False).split
    assert split("The dogs aren't here, 1,000 of them.") == ["the", "dogs", "are", "n't", "here", "N", "of", "them"]
    assert split("Mr. Dog's role-playing costs $5.") == ["mr.", "dog", "'s", "role-playing", "costs", "$", "N"]
    assert split("I can't, they won't say \"no\"") == ["i", "ca", "n't", "they", "wo", "n't", "say", "no"]


def test_wikitext_convention_keeps_case_and_punctuation_and_marks_numbers():
    split = CorpusSplitter(WIKITEXT_LIKE, tokenizer_lowercases=False).split
    assert split("The dogs aren't here, 1,000 of them.") == [
        "The", "dogs", "aren", "'t", "here", ",", "1", "@,@", "000", "of", "them", "."]
    assert split("a role-playing dog's 3.5") == ["a", "role", "@-@", "playing", "dog", "'s", "3", "@.@", "5"]
    assert split("I can't") == ["I", "can", "'t"]


def test_already_tokenized_text_passes_through():
    split = CorpusSplitter(PTB_LIKE, tokenizer_lowercases=False).split
    assert split("the dogs are n't here <unk> <eos>") == ["the", "dogs", "are", "n't", "here", "<unk>", "<eos>"]


def test_a_lowercasing_tokenizer_lowercases_even_a_cased_vocabulary():
    assert CorpusSplitter(WIKITEXT_LIKE, tokenizer_lowercases=True).split("The London dogs") == [
        "the", "london", "dogs"]


def test_character_models_take_the_text_as_it_is():
    characters = CharTokenizer(["<unk>", *sorted(set("The dogs aren't here.\n"))], "unicode", False)
    assert word_splitter(characters)("The dogs aren't here.") == ["The", "dogs", "aren't", "here."]
    words = WordTokenizer(["<eos>", "<unk>", "the", "dogs"], lowercase=False)
    assert word_splitter(words)("The dogs.") == ["the", "dogs"]
