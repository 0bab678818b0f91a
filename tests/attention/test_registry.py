import pytest
from torch import nn

import attnlab
from attnlab.attention import attention_kind, create_attention, get_attention_info, list_attentions


def test_at_least_sixteen_modules():
    names = list_attentions()
    required = {
        "se",
        "eca",
        "cbam",
        "psa",
        "ge",
        "sk",
        "srm",
        "gct",
        "fca",
        "coord",
        "simam",
        "triplet",
        "gc",
        "bam",
        "ese",
        "sa",
    }
    assert required <= set(names)
    assert len(names) >= 16 and "none" not in names  # no attention is None, not a module


def test_info_has_kind_paper_year():
    info = get_attention_info("eca")
    assert info.kind == "gate" and info.year == 2020 and "ECA-Net" in info.paper
    assert attention_kind("psa") == "conv"
    assert set(list_attentions("conv")) >= {"psa", "sk"}


def test_unknown_name_suggests_close_matches():
    # 'ela' and 'ema' are as close to 'eac' as 'eca' by difflib's ratio, so any of them may come first
    with pytest.raises(ValueError, match=r"unknown attention 'eac'\. Did you mean [^?]*'eca'"):
        create_attention("eac", 64)


def test_top_level_api_and_classes():
    assert attnlab.list_attentions() == list_attentions()
    assert isinstance(attnlab.create_attention("eca", 8), nn.Module)
    cls = get_attention_info("se").cls
    assert isinstance(create_attention(cls, 32, reduction=4), cls)


def test_unknown_keyword_names_the_accepted_ones():
    with pytest.raises(
        ValueError, match=r"unexpected keyword argument 'ratio'; it takes \(channels, reduction, bias, act, inplace\)"
    ):
        create_attention("se", 64, ratio=4)
