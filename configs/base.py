"""Every config field, with its meaning and units; experiments import this and override a few.

Run: python -m p2p.main --config=configs/base.py --workdir=runs/base
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """The pix2pix paper defaults on the maps dataset, map -> satellite."""
  config = ml_collections.ConfigDict()
  config.seed = 0                        # PRNG seed for init, dropout, shuffling and jitter
  config.batch_size = 1                  # global batch, images per step over all devices
  config.num_epochs = 200                # passes over the training examples
  config.max_steps = 0                   # stop after this many steps; 0 = num_epochs decides
  config.checkpoint_every_epochs = 10    # epochs between checkpoints (also at the end, SIGTERM)
  config.max_checkpoints_to_keep = 3     # newest checkpoints kept in workdir/checkpoints
  config.log_every_steps = 100           # steps between metrics lines (JSONL, W&B, console)
  config.eval_examples = 64              # val examples scored (val_l1) after every epoch
  config.num_sample_images = 4           # val examples in each epoch's sample image
  config.compute_dtype = "float32"       # float32 | bfloat16 activations; params stay float32
  config.steps_per_call = 1              # steps fused per jitted call (lax.scan); >1 helps on GPU

  config.model = model = ml_collections.ConfigDict()
  model.ngf = 64                         # generator filters in the first layer
  model.ndf = 64                         # discriminator filters in the first layer
  model.norm = "batch"                   # batch | instance | pixel | none (both networks)
  model.g_norm = ""                      # G's own norm, if not model.norm (pixel: ProGAN's
                                         # per-pixel norm, no spatial statistics)
  model.dropout_rate = 0.5               # generator dropout in the inner up blocks
  model.num_downs = 0                    # U-Net depth; 0 = log2(image_size) (8 at 256)
  model.receptive_field = 70             # PatchGAN receptive field, px: 1 | 16 | 34 | 70 | 142 | 286
  model.num_d = 1                        # discriminator scales; > 1: pix2pixHD multi-scale D
  model.conv_transpose_impl = "phase"    # phase (fast on CPU, same params) | flax
  model.upsample = "transposed"          # G's up convs: transposed (paper) | resize (nearest 2x
                                         # + 3x3 conv, no checkerboard; same FLOPs)
  model.matmul_conv_max_size = 16        # 4x4/s2 convs up to this many px run as GEMMs (0 = never)
  model.winograd_min_tiles = 128         # on CPU, D's 4x4 stride-1 convs with at least this many
                                         # 4x4 output tiles (batch x tiles; 64 per image at 256 px,
                                         # 70x70 D) run as Winograd F(4x4, 4x4); 0 = never
  model.noise_layers = 0                 # StyleGAN noise inputs (learned per-channel scale) in
                                         # the N up blocks before the output; 0 = none
  model.d_spectral_norm = False          # spectral norm on every D conv (GauGAN's D with
                                         # optim.gan_mode=hinge and feature matching)
  model.d_conditional = True             # D sees (map, photo) pairs; False: the photo alone

  config.optim = optim = ml_collections.ConfigDict()
  optim.learning_rate = 2e-4             # Adam step size, both networks
  optim.d_lr_scale = 1.0                 # D's step size = learning_rate x this (TTUR: > 1)
  optim.b1 = 0.5                         # Adam beta1
  optim.b2 = 0.999                       # Adam beta2
  optim.schedule = "constant"            # constant | linear (PyTorch: decays to 0 at the end)
  optim.decay_epochs = 0                 # linear: epochs at the end over which LR decays to 0
  optim.gan_mode = "vanilla"             # vanilla (BCE on logits) | lsgan (least squares)
                                         # | hinge (SAGAN/BigGAN) | relativistic (paired,
                                         # RpGAN: each real patch vs the same fake patch)
  optim.l1_weight = 100.0                # lambda_L1 on |G(x) - y|
  optim.l1_pool = 1                      # > 1: L1 between l1_pool x l1_pool block means only
                                         # (low frequencies; texture left to GAN + FM)
  optim.gan_weight = 1.0                 # lambda_GAN on G's adversarial loss; 0 = L1 only
  optim.disc_loss_weight = 1.0           # D loss = weight * (real + fake); PyTorch uses 0.5
  optim.fm_weight = 0.0                  # > 0: pix2pixHD feature matching on D blocks (it uses 10)
  optim.ema_decay = 0.0                  # > 0: also keep an EMA of G's weights (used to sample)
  optim.d_augment = ""                   # DiffAugment on D's real and fake inputs, any of
                                         # color,translation,cutout; "" = none
  optim.r1_gamma = 0.0                   # > 0: R1 penalty gamma/2 |grad D(real)|^2 on D
  optim.r1_every = 1                     # lazy R1: every N steps, scaled by N (StyleGAN2: 16)

  config.wandb = wandb = ml_collections.ConfigDict()
  wandb.mode = "disabled"                # disabled | offline | online (never online by default)
  wandb.project = "p2p"                  # W&B project
  wandb.entity = ""                      # W&B entity (team); "" = your default
  wandb.name = ""                        # run name; "" = the workdir's name

  config.data = data = ml_collections.ConfigDict()
  data.data_dir = "../shared/data/maps"  # folder with train/ and val/ side-by-side pairs
  data.source = "folder"                 # folder (default) | tfds (prepared pix2pix_maps)
  data.tfds_data_dir = ""                # tfds data_dir of pix2pix_maps, for source=tfds
  data.direction = "map_to_satellite"    # map_to_satellite (input = right half) | satellite_to_map
  data.preprocess = "patches"            # patches (native-scale tiles) | resize (whole half)
  data.patch_size = 256                  # pixels, side of a native-scale tile
  data.patch_layout = "cover"            # cover (tiles reach every pixel) | grid (seed: 4 tiles)
                                         # | random (train: grid's count per image, cut at
                                         # random places, native scale; eval: the grid)
  data.patch_stride = 0                  # pixels between cover tiles; 0 = fewest evenly spaced
  data.image_size = 256                  # pixels, model input side
  data.load_size = 286                   # pixels, resize before the random crop (jitter)
  data.jitter = True                     # train: resize to load_size + aligned random crop
  data.flip = True                       # train: horizontal flip of both with p = 0.5
  data.skip_bad_files = False            # skip (and log) undecodable/misshapen files, or fail
  data.verify_images = True              # decode every file at start-up (~3 ms per 1200x600)
  data.worker_count = 0                  # grain worker processes; 0 = threads in this process
  data.worker_buffer_size = 2            # batches each worker process keeps ready
  data.num_threads = 2                   # reader threads (per process)
  data.prefetch_buffer_size = 8          # batches prefetched by the reader threads
  data.resident = False                  # decode the train split once, keep it on the device,
                                         # crop/flip there (GPU; single process only)
  return config


def tiny(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks an experiment to a CPU smoke run (seconds) on the same code path."""
  rf286 = config.model.receptive_field == 286
  size = 128 if rf286 else 32  # RF 286 needs inputs of at least 96 px
  size <<= max(config.model.num_d - 1, 0)  # each extra D scale halves its input
  config.data.image_size = size
  config.data.load_size = size + size // 8
  config.data.patch_size = size
  config.data.verify_images = False
  config.model.ngf = 8
  config.model.ndf = 8
  config.num_epochs = 1
  config.optim.decay_epochs = min(config.optim.decay_epochs, 1)
  config.max_steps = 8
  config.log_every_steps = 2
  config.checkpoint_every_epochs = 1
  config.eval_examples = 2
  config.num_sample_images = 2
  return config


def finish(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies a config argument (`file.py:tiny`); anything else is an error naming it."""
  if arg in (None, ""):
    return config
  if arg == "tiny":
    return tiny(config)
  raise ValueError(f"Unknown config argument {arg!r}; the only one is 'tiny' (file.py:tiny).")
