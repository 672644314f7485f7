import numpy as np
import pytest
import torch as th
from conftest import TinyImageEnv, make_model, q_values, sample_batch
from gymnasium import spaces
from stable_baselines3 import DQN

from sb3_transfer import load_and_adapt, read_source
from sb3_transfer.adapters import adapt_conv_channels
from sb3_transfer.extractors import SmallCNN

SMALL = dict(features_extractor_class=SmallCNN, features_extractor_kwargs=dict(features_dim=12, n_filters=5), net_arch=[])


@pytest.mark.parametrize("size", [3, 10])
def test_small_cnn_takes_small_images(size):
    space = spaces.Box(0, 255, (4, size, size), np.uint8)
    extractor = SmallCNN(space, features_dim=7, n_filters=3)
    assert extractor(th.zeros(2, 4, size, size)).shape == (2, 7)


def test_small_cnn_rejects_what_is_not_an_image():
    with pytest.raises(ValueError, match="SmallCNN needs an image observation space"):
        SmallCNN(spaces.Box(0, 1, (10, 10, 4), bool))
    with pytest.raises(ValueError, match="at least 3x3"):
        SmallCNN(spaces.Box(0, 255, (4, 2, 2), np.uint8))


def test_untrusted_zip_with_small_cnn_transfers_across_channels_and_actions(tmp_path):
    # MinAtar Breakout -> SpaceInvaders in miniature: channels 4 -> 6, actions 3 -> 4.
    source = make_model(DQN, TinyImageEnv(channels=4, n_actions=3, size=10), seed=2, **SMALL)
    source.save(tmp_path / "breakout.zip")
    network = read_source(tmp_path / "breakout.zip")  # no unpickling
    assert network.features_extractor_class is SmallCNN
    assert network.features_extractor_kwargs == dict(features_dim=12, n_filters=5)
    model = load_and_adapt(
        tmp_path / "breakout.zip",
        TinyImageEnv(channels=6, n_actions=4, size=10),
        transfer="all",
        action_map={0: 0, 1: 1, 2: 2},
    )
    rows = {r.target_name: r.action for r in model.transfer_report.rows}
    assert rows["q_net.features_extractor.cnn.0.weight"] == "adapted" and rows["q_net.q_net.0.weight"] == "adapted"
    src, tgt = source.policy.q_net.state_dict(), model.policy.q_net.state_dict()
    assert th.equal(tgt["features_extractor.cnn.0.weight"], adapt_conv_channels(src["features_extractor.cnn.0.weight"], 6))
    assert th.equal(tgt["features_extractor.linear.0.weight"], src["features_extractor.linear.0.weight"])
    assert th.equal(tgt["q_net.0.weight"][:3], src["q_net.0.weight"])
    # Kernels 0 and 1 are shared with channels 4 and 5: where those channels repeat 0 and 1, the Q-values are the source's.
    obs = sample_batch(model.observation_space)
    obs[:, 4:] = obs[:, :2]
    assert th.allclose(q_values(model, obs)[:, :3], q_values(source, obs[:, :4]), atol=1e-5)


def test_untrusted_sizes_are_bounded():
    from sb3_transfer.sources import MAX_LAYER_SIZE, _safe_extractor_kwargs

    notes: list[str] = []
    kwargs = dict(features_dim=MAX_LAYER_SIZE + 1, n_filters=8, normalized_image=True)
    assert _safe_extractor_kwargs("sb3_transfer.extractors.SmallCNN", kwargs, notes) == dict(
        n_filters=8, normalized_image=True
    )
    assert "features_dim" in notes[0]
    assert _safe_extractor_kwargs("sb3_transfer.extractors.SmallCNN", dict(n_filters=0), []) == {}
