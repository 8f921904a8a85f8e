from lstm_lm.config import load_config
from lstm_lm.model.sizing import matched_hidden_size, recurrent_parameters


def model(cell: str, hidden: int):
    return load_config(None, [f"model.cell={cell}", f"model.hidden_size={hidden}", "model.embedding_size=64",
                              "model.num_layers=1"]).model


def test_recurrent_parameters_count_the_gates():
    # an LSTM layer: 4 gates of (input + hidden) weights and two biases each
    assert recurrent_parameters(model("lstm", 100)) == 4 * 100 * (64 + 100 + 2)
    assert recurrent_parameters(model("rnn_tanh", 100)) == 100 * (64 + 100 + 2)


def test_the_matched_size_is_the_nearest_count():
    target = recurrent_parameters(model("lstm", 100))  # 66,400
    for cell in ("gru", "rnn_tanh", "lstm_coupled"):
        size = matched_hidden_size(model(cell, 100), target)
        best = abs(recurrent_parameters(model(cell, size)) - target)
        assert best <= abs(recurrent_parameters(model(cell, size - 1)) - target)
        assert best <= abs(recurrent_parameters(model(cell, size + 1)) - target)
    assert matched_hidden_size(model("gru", 100), target) == 119  # as the synthetic study used
    assert matched_hidden_size(model("rnn_tanh", 100), target) == 227
