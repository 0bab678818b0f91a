import pytest
import torch

from attnlab.data import Batches, Preprocess, load_splits


@pytest.fixture(scope="module")
def digits():
    return load_splits("digits", size=8)


PREPROCESS = Preprocess("fast", 8, 8, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), hflip=False)


def batches(images, **kwargs):
    return Batches(images, PREPROCESS, **{"batch_size": 100, "train": True, "seed": 0, **kwargs})


def test_train_epoch_is_a_seeded_permutation_without_the_partial_batch(digits):
    train = batches(digits.train)
    assert len(train) == len(digits.train) // 100 == 14
    epoch0 = torch.cat(train.index_batches(0))
    assert len(epoch0) == 1400 and len(set(epoch0.tolist())) == 1400
    assert torch.equal(epoch0, torch.cat(train.index_batches(0)))
    assert not torch.equal(epoch0, torch.cat(train.index_batches(1)))
    assert not torch.equal(epoch0, torch.cat(batches(digits.train, seed=1).index_batches(0)))
    images, labels = next(train.epoch(0))
    assert images.shape == (100, 3, 8, 8) and images.dtype == torch.float32
    assert torch.equal(labels, digits.train.labels[epoch0[:100]])
    again, _ = next(train.epoch(0))
    assert torch.equal(images, again)


def test_ddp_shards_split_each_global_batch(digits):
    whole = batches(digits.train).index_batches(2)
    ranks = [batches(digits.train, rank=r, world_size=2).index_batches(2) for r in range(2)]
    assert all(torch.equal(torch.cat([ranks[0][i], ranks[1][i]]), whole[i]) for i in range(len(whole)))
    assert [len(b) for b in ranks[1]] == [50] * 14
    with pytest.raises(ValueError, match="batch_size 100 must be divisible by the number of processes \\(3\\)"):
        batches(digits.train, world_size=3)


def test_eval_shards_cover_every_image_once(digits):
    shards = [torch.cat(batches(digits.val, train=False, rank=r, world_size=2).index_batches(0)) for r in range(2)]
    assert sorted(torch.cat(shards).tolist()) == list(range(len(digits.val)))
    assert (len(shards[0]), len(shards[1])) == (180, 179)
    single = batches(digits.val, train=False)
    assert len(single) == 4
    images, labels = next(single.epoch(5))
    torch.testing.assert_close(images, PREPROCESS.eval(digits.val.cache[0][:100]))
    assert torch.equal(labels, digits.val.labels[:100])


def test_sample_and_prepare_for_the_prediction_grid(digits):
    val = batches(digits.val, train=False)
    raw, labels = val.sample(16)
    assert raw.shape == (16, 3, 8, 8) and raw.dtype == torch.uint8 and len(set(labels.tolist())) > 5
    assert val.prepare(raw).shape == (16, 3, 8, 8)
