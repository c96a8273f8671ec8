"""Prototypical networks (Conv-4) trained on several domains by meta-learning domain generalisation (`mldg`, Li et
al. AAAI 2018): F, the pseudo-seen episode's loss; G, the pseudo-unseen episode's loss after the virtual step
theta - alpha * grad F; one Adam step on grad(F + beta * G) for every weight; no feature-wise layers.

alpha = inner_lr = 1e-3, not MLDG's 0.5 (an MLP on fixed features, SGD at 5e-4): Conv-4 ProtoNet's gradients are
about 0.3 to 1.5 per weight at the start on Omniglot's 5-way episodes, so an SGD step of 1e-3 moves the weights about
as far as one Adam step at lr 1e-3 does, the virtual step of lft too; 0.5 would move weights of size ~0.04 by ~0.5.
beta = 1, MLDG's. Domains, validation, episode shape and budget as pipelines/multidomain_protonet_lft.py (see its
docstring)."""
from hallucinate.domains.config import MultiDomainConfig
from hallucinate.domains.training import run_multidomain

CONFIG = MultiDomainConfig(dataset="omniglot", backbone="conv4", learner="protonet", hallucinator="none",
                           domains="omniglot,noto_glyphs,handwriting_fonts,hershey,cifar_fs_gray",
                           val_domain="noto_glyphs", test_domain="", trainer="mldg", inner_lr=1e-3, mldg_beta=1.0,
                           n_way=5, k_shot=1, q_query=5, episodes=3000, lr=1e-3, lr_step=1000, lr_gamma=0.5,
                           val_every=250, val_episodes=300, val_n_way=5, val_k_shot=1)


def run(config: MultiDomainConfig = CONFIG, **options) -> dict:
    return run_multidomain(config, **options)
