"""From a config to running objects: models, datasets, loaders; and the two jobs
every stage runs, training and evaluation. The scripts only parse flags and call these."""
import random
from pathlib import Path

import numpy as np
import torch
from torch.utils import data

from advent.dataset.base_dataset import DatasetError, read_json_file
from advent.dataset.cityscapes import CityscapesDataSet, CityscapesPseudoDataSet
from advent.dataset.folder import FolderDataSet, FolderPseudoDataSet, load_class_file
from advent.dataset.gta5 import GTA5DataSet
from advent.dataset.loader import build_train_loader, worker_count
from advent.dataset.synthia import SYNTHIADataSet
from advent.domain_adaptation.config import DATASET_DIR, ConfigError, dump_yaml
from advent.domain_adaptation.eval_UDA import check_val_labels, evaluate_domain_adaptation
from advent.domain_adaptation.optim import saved_by_original_sgd
from advent.domain_adaptation.train_UDA import ends_the_run, find_resume_state, train_domain_adaptation
from advent.model import discriminator
from advent.model.deeplabv2 import MODEL_VARIANTS, get_deeplab_v2
from advent.utils import distributed
from advent.utils.serialization import (CheckpointError, StateDictMismatch, atomic_write_text, check_state_dict,
                                        load_checkpoint, load_model_weights, missing_checkpoint_message)


def build_segmenter(name, num_classes, multi_level):
    if name not in MODEL_VARIANTS:
        raise ConfigError(f'model {name!r} is not known: expected one of {sorted(MODEL_VARIANTS)}')
    return get_deeplab_v2(num_classes=num_classes, multi_level=multi_level, variant=name)


FOLDER_KINDS = ('Folder', 'FolderEasy', 'FolderHard')
# The classes of the canonical sources, for the comparison with a folder dataset's class file.
CANONICAL_CLASS_FILES = {'GTA': DATASET_DIR / 'cityscapes_list' / 'info.json',
                         'SYNTHIA': DATASET_DIR / 'cityscapes_list' / 'info16.json'}


def class_files(cfg):
    """(config key, class file, whether a folder dataset reads it) of the source, the target
    and the val set."""
    folder_target = cfg.TARGET in FOLDER_KINDS
    if cfg.SOURCE in CANONICAL_CLASS_FILES:
        source = (f'SOURCE {cfg.SOURCE}', str(CANONICAL_CLASS_FILES[cfg.SOURCE]), False)
    elif cfg.SOURCE == 'Folder':
        source = ('TRAIN.INFO_SOURCE', cfg.TRAIN.INFO_SOURCE, True)
    else:  # stage 3: the easy split is target data
        source = ('TRAIN.INFO_TARGET', cfg.TRAIN.INFO_TARGET, cfg.SOURCE == 'FolderEasy')
    return [source, ('TRAIN.INFO_TARGET', cfg.TRAIN.INFO_TARGET, folder_target),
            ('TEST.INFO_TARGET', cfg.TEST.INFO_TARGET, folder_target)]


def check_class_files(cfg):
    """With a folder dataset on either side: source, target and val name the same classes in
    the same order (SPEC 11). The canonical pairs are left as the original had them."""
    if cfg.SOURCE not in FOLDER_KINDS and cfg.TARGET not in FOLDER_KINDS:
        return
    names = {}
    for key, path, folder in class_files(cfg):
        if path not in names:
            # a canonical dataset's info file (info.json) is read as the original read it
            info = load_class_file(path, key) if folder else read_json_file(path, f'info file {path} ({key})')
            names[path] = (key, info.get('label'))
    (first, (first_key, first_names)), *others = names.items()
    for path, (key, classes) in others:
        if classes != first_names:
            raise DatasetError(f'class files {first} ({first_key}) and {path} ({key}) name different classes (or '
                               f'orders): {first_names} vs {classes}')


def build_source_dataset(cfg):
    check_class_files(cfg)
    common = dict(max_iters=cfg.TRAIN.MAX_ITERS * cfg.TRAIN.BATCH_SIZE_SOURCE,
                  crop_size=cfg.TRAIN.INPUT_SIZE_SOURCE, mean=cfg.TRAIN.IMG_MEAN)
    if cfg.SOURCE == 'GTA':
        return GTA5DataSet(cfg.DATA_DIRECTORY_SOURCE, cfg.DATA_LIST_SOURCE, set=cfg.TRAIN.SET_SOURCE, **common)
    if cfg.SOURCE == 'SYNTHIA':
        return SYNTHIADataSet(cfg.DATA_DIRECTORY_SOURCE, cfg.DATA_LIST_SOURCE, set=cfg.TRAIN.SET_SOURCE, **common)
    if cfg.SOURCE == 'Folder':
        return FolderDataSet(cfg.DATA_DIRECTORY_SOURCE, cfg.DATA_LIST_SOURCE, set=cfg.TRAIN.SET_SOURCE,
                             info_path=cfg.TRAIN.INFO_SOURCE, num_classes=cfg.NUM_CLASSES, **common)
    # Stage 3: the easy split is a part of the target training set, with pseudo-labels.
    if not Path(cfg.DATA_LIST_SOURCE).is_file():
        raise DatasetError(f'easy split {cfg.DATA_LIST_SOURCE} does not exist: run stage 2 first, '
                           f'entropy_rank/entropy.py --out-dir {Path(cfg.DATA_LIST_SOURCE).parent}')
    if cfg.SOURCE == 'FolderEasy':
        return FolderPseudoDataSet(cfg.DATA_DIRECTORY_TARGET, cfg.DATA_LIST_SOURCE, cfg.DATA_DIRECTORY_PSEUDO_LABELS,
                                   set=cfg.TRAIN.SET_TARGET, info_path=cfg.TRAIN.INFO_TARGET,
                                   num_classes=cfg.NUM_CLASSES, **common)
    return CityscapesPseudoDataSet(cfg.DATA_DIRECTORY_TARGET, cfg.DATA_LIST_SOURCE, cfg.DATA_DIRECTORY_PSEUDO_LABELS,
                                   set=cfg.TRAIN.SET_TARGET, info_path=cfg.TRAIN.INFO_TARGET, **common)


def build_target_dataset(cfg, max_iters=None):
    """The unlabelled target training images (no label file is opened)."""
    check_class_files(cfg)
    if cfg.TARGET in FOLDER_KINDS:
        return FolderDataSet(cfg.DATA_DIRECTORY_TARGET, cfg.DATA_LIST_TARGET, set=cfg.TRAIN.SET_TARGET,
                             info_path=cfg.TRAIN.INFO_TARGET, max_iters=max_iters,
                             crop_size=cfg.TRAIN.INPUT_SIZE_TARGET, mean=cfg.TRAIN.IMG_MEAN,
                             num_classes=cfg.NUM_CLASSES, load_labels=False)
    return CityscapesDataSet(cfg.DATA_DIRECTORY_TARGET, cfg.DATA_LIST_TARGET, set=cfg.TRAIN.SET_TARGET,
                             info_path=cfg.TRAIN.INFO_TARGET, max_iters=max_iters,
                             crop_size=cfg.TRAIN.INPUT_SIZE_TARGET, mean=cfg.TRAIN.IMG_MEAN, load_labels=False)


def build_test_dataset(cfg):
    check_class_files(cfg)
    if cfg.TARGET in FOLDER_KINDS:
        return FolderDataSet(cfg.DATA_DIRECTORY_TARGET, cfg.TEST.DATA_LIST_TARGET, set=cfg.TEST.SET_TARGET,
                             info_path=cfg.TEST.INFO_TARGET, crop_size=cfg.TEST.INPUT_SIZE_TARGET,
                             mean=cfg.TEST.IMG_MEAN, labels_size=cfg.TEST.OUTPUT_SIZE_TARGET,
                             num_classes=cfg.NUM_CLASSES)
    return CityscapesDataSet(cfg.DATA_DIRECTORY_TARGET, cfg.TEST.DATA_LIST_TARGET, set=cfg.TEST.SET_TARGET,
                             info_path=cfg.TEST.INFO_TARGET, crop_size=cfg.TEST.INPUT_SIZE_TARGET,
                             mean=cfg.TEST.IMG_MEAN, labels_size=cfg.TEST.OUTPUT_SIZE_TARGET)


def seed_everything(seed):
    torch.manual_seed(seed)
    torch.cuda.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def run_training(cfg, random_train=False, resume=False):
    """Stage 1 or stage 3 training from a finalised config."""
    distributed.init_from_env(use_cuda=cfg.GPU_ID >= 0)
    rank, world_size = distributed.get_rank(), distributed.get_world_size()
    seed = cfg.TRAIN.RANDOM_SEED
    if random_train:
        seed = distributed.broadcast_int(random.SystemRandom().randrange(2 ** 31)) if world_size > 1 else None
    if seed is not None:
        seed_everything(seed)

    model = build_segmenter(cfg.TRAIN.MODEL, cfg.NUM_CLASSES, cfg.TRAIN.MULTI_LEVEL)
    if cfg.TRAIN.RESTORE_FROM:
        load_model_weights(model, cfg.TRAIN.RESTORE_FROM)
    elif distributed.is_main_process():
        print('TRAIN.RESTORE_FROM is empty: the segmenter starts from random weights')

    source_dataset = build_source_dataset(cfg)
    target_dataset = build_target_dataset(cfg, cfg.TRAIN.MAX_ITERS * cfg.TRAIN.BATCH_SIZE_TARGET)
    for name, dataset in (('source', source_dataset), ('target', target_dataset)):
        if len(dataset) < world_size:
            raise DatasetError(f'the {name} list has fewer images than the {world_size} processes')
    source_loader = build_train_loader(source_dataset, cfg.TRAIN.BATCH_SIZE_SOURCE, cfg.NUM_WORKERS, seed,
                                       rank, world_size)
    target_loader = build_train_loader(target_dataset, cfg.TRAIN.BATCH_SIZE_TARGET, cfg.NUM_WORKERS, seed,
                                       rank, world_size)

    snapshot_dir = Path(cfg.TRAIN.SNAPSHOT_DIR)
    resume_state = None
    if resume:
        state_path = find_resume_state(snapshot_dir) if snapshot_dir.is_dir() else None
        if state_path is None:
            print(f'--resume: no training state in {snapshot_dir}; starting from iteration 0')
        else:
            print(f'--resume: continuing from {state_path}')
            resume_state = load_resume_state(state_path, cfg, model)
            if ends_the_run(resume_state['iteration'], cfg):  # training states are written at snapshots only
                print(f'--resume: the run in {snapshot_dir} is complete (iteration {resume_state["iteration"]}); '
                      f'nothing to do')
                distributed.cleanup()
                return
    if distributed.is_main_process():
        snapshot_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(snapshot_dir / 'train_cfg.yml', dump_yaml(cfg))
        if cfg.TRAIN.TENSORBOARD_LOGDIR:
            Path(cfg.TRAIN.TENSORBOARD_LOGDIR).mkdir(parents=True, exist_ok=True)
    try:
        train_domain_adaptation(model, source_loader, target_loader, cfg, resume_state=resume_state)
    finally:
        distributed.cleanup()


RESUME_KEYS = ('iteration', 'model', 'optimizer', 'discriminators', 'optimizers_d', 'scaler', 'rng',
               'source_data', 'target_data')


def load_resume_state(path, cfg, model):
    """A training state (train_UDA.save_training_state), checked against this config."""
    state = load_checkpoint(path)
    missing = [key for key in RESUME_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(f'training state {path} lacks {missing[0]!r}: expected a train_state_<i>.pth '
                              f'written by advent training')
    expected = ['d_aux', 'd_main'] if cfg.TRAIN.DA_METHOD == 'AdvEnt' else []
    if sorted(state['discriminators']) != expected:
        raise CheckpointError(f'training state {path} holds the discriminators {sorted(state["discriminators"])}, '
                              f'TRAIN.DA_METHOD {cfg.TRAIN.DA_METHOD} expects {expected}: another run in this folder?')
    check_state_dict(model, state['model'], f'{path} (model)')
    built = discriminator.get_fc_discriminator(num_classes=cfg.NUM_CLASSES, ndf=cfg.TRAIN.D_NDF)
    for name in expected:   # every key and shape against the discriminator this config builds
        saved = state['discriminators'][name]
        try:
            check_state_dict(built, saved, f'{path} ({name})')
        except StateDictMismatch:
            first_conv = saved.get('0.weight')
            if torch.is_tensor(first_conv) and first_conv.shape[0] != cfg.TRAIN.D_NDF:
                raise CheckpointError(f'training state {path} was written with TRAIN.D_NDF {first_conv.shape[0]}, '
                                      f'the config has {cfg.TRAIN.D_NDF}: set it back to continue this run') from None
            raise
    saved_original = saved_by_original_sgd(state['optimizer'])
    if saved_original != cfg.TRAIN.ORIGINAL_SGD:
        raise CheckpointError(f'training state {path} was written with TRAIN.ORIGINAL_SGD {saved_original}, the '
                              f'config has {cfg.TRAIN.ORIGINAL_SGD}: set it back to continue this run')
    return state


def run_evaluation(cfg):
    """Stage 1 or stage 3 evaluation ('single' or 'best') from a finalised config."""
    if cfg.TEST.MODE == 'best' and len(cfg.TEST.MODEL) != 1:
        raise ConfigError('TEST.MODE best evaluates one model: TEST.MODEL must have one entry')
    models = [build_segmenter(name, cfg.NUM_CLASSES, multi)
              for name, multi in zip(cfg.TEST.MODEL, cfg.TEST.MULTI_LEVEL)]
    if cfg.TEST.MODE == 'single':
        for path in cfg.TEST.RESTORE_FROM:
            if not path or not Path(path).is_file():
                raise ConfigError(f'TEST.RESTORE_FROM: {missing_checkpoint_message(path or repr(path))}')
    test_dataset = build_test_dataset(cfg)
    check_val_labels(test_dataset, cfg.TEST.MODE, cfg.TEST.SELECTION)
    test_loader = data.DataLoader(test_dataset, batch_size=cfg.TEST.BATCH_SIZE_TARGET,
                                  num_workers=worker_count(cfg.NUM_WORKERS),
                                  shuffle=False, pin_memory=torch.cuda.is_available())
    return evaluate_domain_adaptation(models, test_loader, cfg)
