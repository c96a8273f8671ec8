"""Prototypical networks (Conv-4) trained on several domains with feature-wise transformation layers held at their
initial values (`fwt_fixed`: after each batch norm, in training only, scale 1 + eps * softplus(0.3) and shift
eps' * softplus(0.5), per channel, eps and eps' ~ N(0, 1); not learned): one Adam step on each pseudo-seen episode.

Domains, validation, episode shape and budget as pipelines/multidomain_protonet_lft.py (see its docstring)."""
from hallucinate.domains.config import MultiDomainConfig
from hallucinate.domains.training import run_multidomain

CONFIG = MultiDomainConfig(dataset="omniglot", backbone="conv4", learner="protonet", hallucinator="none",
                           domains="omniglot,noto_glyphs,handwriting_fonts,hershey,cifar_fs_gray",
                           val_domain="noto_glyphs", test_domain="", trainer="fwt_fixed",
                           fwt_gamma_init=0.3, fwt_beta_init=0.5,
                           n_way=5, k_shot=1, q_query=5, episodes=3000, lr=1e-3, lr_step=1000, lr_gamma=0.5,
                           val_every=250, val_episodes=300, val_n_way=5, val_k_shot=1)


def run(config: MultiDomainConfig = CONFIG, **options) -> dict:
    return run_multidomain(config, **options)
