from stable_baselines3 import DQN
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_transfer import load_and_adapt

# A source agent. Any SB3 DQN / QR-DQN .zip works here, e.g. one published by rl-baselines3-zoo.
source = DQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[64, 64]), learning_starts=500, seed=0)
source.learn(5_000)
source.save("cartpole_dqn.zip")

# A new task with other observations (6 instead of 4) and actions (3 instead of 2): Acrobot.
# Extra keyword arguments go to DQN (here rl-baselines3-zoo's tuned Acrobot values).
model = load_and_adapt(
    "cartpole_dqn.zip", "Acrobot-v1", transfer="trunk", learning_rate=6.3e-4, target_update_interval=250, seed=0
)  # prints the transfer report
model.learn(10_000)
mean_reward, std_reward = evaluate_policy(model, model.get_env(), n_eval_episodes=5)
print(f"Acrobot after 10k fine-tuning steps: {mean_reward:.1f} +/- {std_reward:.1f}")
model.save("acrobot_from_cartpole.zip")  # DQN.load() reads it back (with sb3_transfer installed)
