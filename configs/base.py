"""The fields every experiment config has, each with its meaning. Experiments override a few."""

import ml_collections

from amr.data.tasks import default_data_config
from amr.models import default_model_config


def get_base_config(model: str = "byte_lm", source: str = "python_text") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.strategies = (
        "none",
        "uniform",
        "amr",
    )  # replay strategies, run at equal compute: none|uniform|task_balanced|amr|mir (joint: over-budget reference)
    c.baseline = "uniform"  # forgetting reduction in results.json is reported relative to this strategy
    c.seeds = (0,)  # one full run per seed and strategy; results average over seeds

    c.model = default_model_config(model, "tiny")  # amr.models: name, width, depth, heads, ... (see its docstring)
    c.data = default_data_config(source)  # amr.data: source, domains (task order), split seed, sizes

    c.train = ml_collections.ConfigDict()
    c.train.steps_per_task = 160  # optimizer steps on every task (the same for every strategy)
    c.train.batch_size = 32  # global rows per step (new + replay), split over the devices
    c.train.chunk_size = 8  # S: steps per jitted chunk; the bandit adapts between chunks (1 = most adaptive)
    c.train.eval_every = 40  # held-out evaluation of all tasks every this many steps, for curves (0 = task ends only)
    c.train.eval_batch = 128  # rows per held-out / embedding / reference-loss batch
    c.train.checkpoint_every = 10  # chunks between checkpoints (task ends always checkpoint; 0 = task ends only)
    c.train.nonfinite = "skip"  # a step with non-finite loss/gradients: 'skip' it (counted) or 'halt' the run

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "adamw"  # adamw | sgd | adafactor
    c.optim.learning_rate = 1e-3  # peak learning rate
    c.optim.warmup_steps = 10  # linear warm-up steps (per task for rewarm_redecay)
    c.optim.schedule = "constant"  # constant | rewarm_redecay (re-warm and cosine re-decay every task)
    c.optim.min_lr_ratio = 0.1  # rewarm_redecay: final learning rate as a fraction of the peak
    c.optim.b1 = 0.9  # adam beta1 (sgd: momentum, 0 = none)
    c.optim.b2 = 0.99  # adam beta2
    c.optim.weight_decay = 0.0  # decoupled weight decay
    c.optim.grad_clip = 1.0  # global-norm gradient clipping (0 = off)

    c.replay = ml_collections.ConfigDict()
    c.replay.fraction = 0.0625  # share of each batch given to replay (small, as in continual pre-training)
    c.replay.clusters_per_task = 1  # AMR arms per finished task: 1 = task arms, >1 = k-means on the model's embeddings
    # how clusters_per_task > 1 arms split a finished task: kmeans (on the model's embeddings, see `embeddings`) |
    # groups (each row's group from the data, e.g. a mixture task's source: free, no embeddings or k-means; a task
    # with fewer groups than arms leaves the rest empty, never drawn; a source without groups is one group)
    c.replay.arm_labels = "kmeans"
    c.replay.max_arms = 0  # arms allocated up front (static shapes); 0 = tasks x clusters_per_task
    # AMR's reward (docs/REWARDS.md): loss | loss_increase (over `reference`) | marginal (loss drop after the update,
    # paid) | benefit (free: how much one more replayed row per step slows an arm's forgetting; reference 'sample')
    c.replay.reward = "loss_increase"
    c.replay.benefit_alpha = 0.2  # benefit: EMA rate in (0, 1] of each arm's (replay intensity, drift) moments
    c.replay.benefit_prior = 2.0  # benefit: pseudo-pairs (>= 0) shrinking an arm's slope toward the pooled slope
    # amr: inside the drawn arm, draw rows by weight exp(row_priority·z) of their last observed loss increase (z within
    # the arm; free, amr.replay.row_priority); 0 = uniformly inside the arm
    c.replay.row_priority = 0.0
    # loss_increase reference: sample (each row's own loss when last trained on as new data, free) |
    # task_end (that loss shifted to the row's task end: minus how much the task's training loss fell after it, free) |
    # visit (each row's loss at its last visit, new or replayed, free) |
    # train (the arm's task's last-chunk training loss, free, task arms only) | probe (ref_samples rows per arm, paid) | auto (= sample)
    c.replay.reference = "auto"
    c.replay.ref_samples = 64  # rows per arm whose loss is the arm's reference at its task end (loss_increase)
    c.replay.probe_samples = 0  # forward-only probe rows per chunk spread over the arms (0 = replay feedback only)
    c.replay.zero_cost = True  # pay for selection (probes, k-means, references, MIR) by trimming new-task rows
    # new-task rows per step of the replaying strategies (0 = batch - replay rows): the sweep's same-split control
    # runs uniform at a trimming strategy's new rows (amr.compute.plan.check_new_rows validates it)
    c.replay.new_rows = 0
    # replay rows per step: fixed (round(fraction x batch) every step) | schedule (a ramp over each task, mean =
    # fraction) | controller (follows measured forgetting vs new-task progress) | plateau (share_min until the new
    # task's loss stops falling, then share_max: the mean share floats); every step trains batch rows
    c.replay.share = "fixed"
    c.replay.share_min = 0.0  # schedule/controller: fewest replay rows per step, a fraction of the batch (<= fraction)
    c.replay.share_max = 0.25  # schedule/controller: most replay rows per step, a fraction of the batch (>= fraction)
    # plateau: the new rows' loss curve is fitted over about 1 / (1 - plateau_decay) recent chunks; a slope above
    # -plateau_z standard errors is a plateau, and the task replays share_max from there to its end
    c.replay.plateau_decay = 0.8
    c.replay.plateau_z = 1.0
    c.replay.share_schedule = "front"  # schedule: front (most replay at a task's start, least at its end) | back | tail
    c.replay.kmeans_iters = 20  # Lloyd iterations of the k-means that makes arms
    # k-means arms' embeddings: paid (an extra embedding pass over the finished task, charged) | free (pooled
    # from each row's last training forward pass; only rows never trained on are embedded and charged)
    c.replay.embeddings = "paid"
    c.replay.embed_dim_hint = c.model.width  # embedding width, for the ledger's k-means FLOP estimate
    c.replay.mir_candidates = 4  # MIR: candidates scored per replay slot
    c.replay.task_tilt = 0.0  # tilted: task i of n past tasks gets replay mass ∝ exp(task_tilt·i/(n-1))
    c.replay.mir_lr = 0.1  # MIR: learning rate of the virtual SGD step

    c.bandit = ml_collections.ConfigDict()
    c.bandit.estimator = "ema"  # ema | window: how an arm's reward estimate follows its observations
    c.bandit.alpha = 0.3  # EMA step size in (0, 1]
    c.bandit.window = 16  # window estimator: observations kept per arm
    c.bandit.policy = "boltzmann"  # boltzmann | greedy | epsilon_greedy | ucb | exp3 | thompson | uniform
    c.bandit.tau = 1.0  # Boltzmann temperature over normalised rewards
    c.bandit.epsilon = 0.1  # uniform floor mixed into the Boltzmann / epsilon-greedy distribution
    c.bandit.normalize = (
        "zscore"  # zscore (spread of arm estimates) | pooled (spread of single rewards) | minmax | none
    )
    c.bandit.ucb_c = 1.0  # UCB exploration coefficient
    c.bandit.exp3_alpha = 0.9  # EXP3 (Online Data Mixing): smoothing of importance-weighted rewards
    c.bandit.optimism = 1.0  # score bonus of never-observed arms so each is tried
    # row: one estimator step per replayed row (an EMA then tracks an arm's last few rows) | segment: one step
    # per arm per chunk on the mean of its rows (the estimate follows chunks; arms compared on means of many rows)
    c.bandit.aggregate = "row"
    # keep: estimates carried over when a task adds arms, the new arm optimistic (a newest-first start) |
    # reset: every task starts the bandit afresh, uniform over the past arms until its own rewards move it
    c.bandit.new_arms = "keep"

    # companion continual-learning methods (amr.methods; docs/METHODS.md), composed with every strategy:
    # any of l2sp | ewc | ema | lines | hft | slow_learner | distill | gere | migu, e.g. ("ewc", "ema");
    # () = none (every run exactly as without the package)
    c.methods = ()
    c.method = ml_collections.ConfigDict()  # the methods' hyperparameters (read only for configured methods)
    c.method.l2sp_lambda = 0.1  # L2-SP pull λ toward the last task end's weights (α=0.1: Li et al. 2018)
    c.method.ewc_lambda = 1.0  # EWC penalty λ: scale-dependent, papers tune it per benchmark (ours; tune it)
    c.method.ewc_gamma = 1.0  # online EWC Fisher decay γ: 1 = accumulate (Huszár 2018; Schwarz et al. 2018 allow γ<1)
    c.method.ewc_rows = 256  # rows of a finished task the empirical Fisher is estimated on (ours; its pass is paid)
    c.method.ema_beta = 0.99  # weight EMA β, fixed and debiased: a 100-step horizon, under a task (amr/methods/ema.py)
    c.method.ema_adaptive = False  # True: the adaptive β_t of arXiv 2410.10868 per tensor (ema_beta its fallback)
    c.method.lines_alpha = 0.5  # LiNeS λ(1) = α, the first layer's update kept (ours: arXiv 2410.17146 tunes α, β)
    c.method.lines_beta = 0.5  # LiNeS λ(L) = α + β, the last layer's (ours: α + β = 1 keeps the head's update whole)
    c.method.hft_seed = 0  # HFT: seed of the per-task masks of frozen matrices (ours; arXiv 2404.18466 freezes half)
    c.method.slow_lr_ratio = 0.01  # slow learner: backbone lr / head lr (SLCA, arXiv 2303.05118: 1e-4 vs 1e-2)
    c.method.distill_temperature = 2.0  # distillation temperature T on replayed rows' logits (LwF: T=2, 2016)
    c.method.distill_lambda = 1.0  # distillation weight λ (LwF's loss balance λ_o=1; the MAE's output MSE too: ours)
    c.method.gere_lambda = 100.0  # GeRe TM margin weight (the authors' code default w_strategy='100', arXiv 2508.04676)
    c.method.gere_rows = 64  # GeRe general rows, from the first task (ours; the paper keeps 1,000 general texts)
    c.method.gere_batch = 4  # GeRe general rows run per step, cycled (ours; their forward and backward are paid)
    c.method.migu_fraction = 0.3  # MIGU: share of each linear layer's units updated (T=0.7 quantile: authors' code)

    c.memory = ml_collections.ConfigDict()
    # where past tasks' train rows live: device (one replicated array, replay rows gathered inside the chunk) |
    # host (checksummed ArrayRecord shards read by a prefetching grain loader; only the index is on device)
    c.memory.placement = "device"
    c.memory.staleness = 1  # host: chunks between drawing replay ids and training on them (0 = exact, = device)
    c.memory.dir = ""  # host: directory of the memory shards ('' = <workdir>/memory)
    c.memory.workers = 2  # host: grain reader threads loading replay rows (0 = read in the prefetch thread)

    c.mesh = ml_collections.ConfigDict()
    c.mesh.num_devices = 0  # devices on the 1-D "data" axis (0 = all visible devices)
    return c
