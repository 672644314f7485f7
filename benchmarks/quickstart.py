from stable_baselines3 import DQN
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_transfer import load_and_adapt
from sb3_transfer.callbacks import PolicyWarmStart

# rl-baselines3-zoo's tuned DQN settings for CartPole-v1, for the source and for both runs on the target.
settings = dict(
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1_000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    seed=0,
)
network = dict(net_arch=[256, 256])

# A source agent. Any SB3 DQN / QR-DQN .zip works here, e.g. one published by rl-baselines3-zoo.
source = DQN("MlpPolicy", "CartPole-v1", policy_kwargs=network, **settings)
source.learn(20_000)
source.save("cartpole_dqn.zip")


def score(model):
    """Mean return of 10 greedy episodes on the target task, the same 10 episodes for every model."""
    return evaluate_policy(model, make_vec_env("CartPoleLongPole-v1", seed=1), n_eval_episodes=10)[0]


# The target task: CartPole with a pole twice as long. Transfer: every layer carried over (load_and_adapt's
# architecture, report and fine-tuning defaults), and the pretrained policy fills the replay buffer first.
transfer = load_and_adapt("cartpole_dqn.zip", "CartPoleLongPole-v1", transfer="all", verbose=0, **settings)
before = score(transfer)
transfer.learn(5_000, callback=PolicyWarmStart())
transfer.save("longpole_from_cartpole.zip")  # DQN.load() reads it back (with sb3_transfer installed)

# Scratch: SB3's own DQN on the same task, with the same network, settings, seed and budget.
scratch = DQN("MlpPolicy", "CartPoleLongPole-v1", policy_kwargs=network, **settings)
scratch.learn(5_000)

print("CartPoleLongPole-v1, mean return of 10 episodes (500 at most):")
print(f"  transfer, before fine-tuning: {before:6.1f}")
print(f"  transfer, after 5000 steps:   {score(transfer):6.1f}")
print(f"  scratch, after 5000 steps:    {score(scratch):6.1f}")
