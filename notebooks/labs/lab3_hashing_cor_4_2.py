# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version,-jupytext.text_representation.format_version,-kernelspec
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Lab 3 · Corollary 4.2 and pseudo-hashing
#
# **Reading:** P-I2SB (Qiu et al., 2025) §3.1 (the Monge example), Thm. 4.1 and Cor. 4.2, §4.2 and
# eq. 11–13, 18 (the pseudo-hashing module).
#
# In blind restoration one clean image $x$ has many degraded partners $y_1, y_2,\dots$ Cor. 4.2: the
# Dirac-pair bridges $(x, y_j)$ cannot all belong to one process, because the solution from the one
# start $x$ is unique. In the OT-ODE limit the process is a map $T$, and the best any map can do for
# the pairs $\{(x_p, y_p)\}$ is the *forced error*
#
# $$(\ast)\qquad \min_T \frac1P\sum_p\lVert T(x_p)-y_p\rVert^2=\frac1P\sum_p\lVert y_p-\bar y(x_p)\rVert^2,$$
#
# where $\bar y(x)$ is the mean of the partners of $x$. Pseudo-hashing replaces $(x, y)$ by
# $(\hat x,\hat y)=H(x, y)$ so that every pair gets its own start, and decodes $x=J(\hat x, y)$. In this
# lab you
#
# 1. implement Cat and Res (encode and decode);
# 2. implement the forced error $(\ast)$ and measure it before and after hashing;
# 3. measure the floor of the *restoring* direction, and explain it in words.
#
# Write your code where it says `YOUR CODE HERE`, then *Run All*; do not edit the `# graded` cells.
# Conventions: the channel axis is dim 1, for 2D points `(N, D)` and images `(N, C, H, W)` alike.
# Res uses eq. 13's sign, $\hat x = R = y - x$ (the library's docstring explains why eq. 11 and 18
# disagree with it).

# %% tags=["parameters"]
SEED = 0        # seed of the random test data
GAP = 2.0       # the Monge example's partners are (0.75, ±GAP/2), the clean point (−0.75, 0)

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false}
import torch

from pi2sb_lab.counterexample import forced_error, monge_example, shared_partners
from pi2sb_lab.hashing import Cat, Origin, Res
from pi2sb_lab.labs.check import close, finite, implemented

torch.set_default_dtype(torch.float64)
gen = torch.Generator().manual_seed(SEED)
points_x, points_y = torch.randn(6, 2, generator=gen), torch.randn(6, 2, generator=gen)
images_x, images_y = torch.rand(3, 1, 8, 8, generator=gen) * 2 - 1, torch.rand(3, 1, 8, 8, generator=gen) * 2 - 1

# %% [markdown]
# ## Part 1 · Cat and Res (P-I2SB eq. 12, 13 and 18)
#
# **Cat:** $\hat x = x\oplus y$, $\hat y = y\oplus y$ (concatenation along channels); decoding keeps the
# first half of the channels. **Res:** $\hat x = y - x$, $\hat y = y$; decoding inverts it.
# `encode` returns the pair `(x_hat, y_hat)`; `decode(x_hat, y)` gets the *raw* degraded `y`.

# %% nbgrader={"grade": false, "grade_id": "hashes", "locked": false, "schema_version": 3, "solution": true}
def cat_encode(x, y):
    ### BEGIN SOLUTION
    return torch.cat([x, y], dim=1), torch.cat([y, y], dim=1)
    ### END SOLUTION


def cat_decode(x_hat, y):
    ### BEGIN SOLUTION
    return x_hat[:, : y.shape[1]]
    ### END SOLUTION


def res_encode(x, y):
    ### BEGIN SOLUTION
    return y - x, y
    ### END SOLUTION


def res_decode(x_hat, y):
    ### BEGIN SOLUTION
    return y - x_hat
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "cat_encode_decode", "locked": true, "points": 2, "schema_version": 3, "solution": false}
# graded: Cat encodes like the library and decodes back to x, for points and images
for x, y in ((points_x, points_y), (images_x, images_y)):
    x_hat, y_hat = implemented(cat_encode, x, y)
    ref = Cat().encode(x, y)
    close("Cat's x_hat", x_hat, ref.x_hat, hint="Concatenate x and y along dim 1 (channels).")
    close("Cat's y_hat", y_hat, ref.y_hat, hint="The second endpoint is y twice.")
    close("Cat's decode(encode(x, y), y)", implemented(cat_decode, x_hat, y), x, tol=0.0,
          hint="Keep the first half of the channels.")

# %% nbgrader={"grade": true, "grade_id": "res_encode_decode", "locked": true, "points": 2, "schema_version": 3, "solution": false}
# graded: Res encodes like the library (eq. 13's sign) and decode inverts encode
for x, y in ((points_x, points_y), (images_x, images_y)):
    x_hat, y_hat = implemented(res_encode, x, y)
    ref = Res().encode(x, y)
    close("Res's x_hat", x_hat, ref.x_hat, hint="x̂ = R = y − x (eq. 13).")
    close("Res's y_hat", y_hat, ref.y_hat)
    close("Res's decode(encode(x, y), y)", implemented(res_decode, x_hat, y), x, tol=1e-12,
          hint="decode must invert encode: solve x̂ = y − x for x.")
### BEGIN HIDDEN TESTS
x_hat = torch.randn(4, 2, generator=gen)
close("Res's decode of an arbitrary x_hat", res_decode(x_hat, points_y[:4]), Res().decode(x_hat, points_y[:4]))
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 · The forced error (∗), before and after hashing
#
# Implement $(\ast)$ for any pairs `starts` `(P, D)` → `ends` `(P, D)`: group the rows whose starts are
# *exactly* equal (hint: `torch.unique(starts, dim=0, return_inverse=True)`), send each group to the
# mean of its ends, and return the mean squared error over all rows as a Python float.

# %% nbgrader={"grade": false, "grade_id": "forced_floor", "locked": false, "schema_version": 3, "solution": true}
def forced_floor(starts, ends):
    """(∗): the least mean squared error of any map starts → ends."""
    ### BEGIN SOLUTION
    _, group = torch.unique(starts, dim=0, return_inverse=True)
    n = int(group.max()) + 1
    sums = torch.zeros(n, ends.shape[1], dtype=ends.dtype).index_add_(0, group, ends)
    counts = torch.bincount(group, minlength=n).to(ends.dtype)
    best = (sums / counts[:, None])[group]
    return (ends - best).square().sum(dim=1).mean().item()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "floor_matches_library", "locked": true, "points": 2, "schema_version": 3, "solution": false}
# graded: your (∗) agrees with counterexample.forced_error on the Monge example and on random groups
pairs = monge_example(GAP)
mine = implemented(forced_floor, pairs.x, pairs.y)
assert isinstance(mine, float), f"forced_floor must return a Python float; got {type(mine).__name__}"
close("(∗) on the Monge example", torch.tensor(mine), torch.tensor(GAP ** 2 / 4),
      hint="Two partners at distance GAP: each is GAP/2 from their mean.")
starts = torch.randint(0, 3, (40, 1), generator=gen).double().repeat(1, 2)
ends = torch.randn(40, 2, generator=gen)
close("(∗) on random groups", torch.tensor(forced_floor(starts, ends)), torch.tensor(forced_error(starts, ends).mse),
      hint="Group rows by equal starts; each group's best end is its mean.")

# %% nbgrader={"grade": true, "grade_id": "hashing_removes_the_floor", "locked": true, "points": 1, "schema_version": 3, "solution": false}
# graded: after Cat or Res each pair has its own start, so a map can reach every partner: (∗) = 0
table = {}
for strategy in (Origin(), Cat(), Res()):
    x_hat, y_hat = strategy.encode(pairs.x, pairs.y)
    table[strategy.name] = implemented(forced_floor, x_hat, y_hat)
print("forced error (∗) of the forward map x̂ → ŷ on the Monge example:", table)
close("(∗) without hashing", torch.tensor(table["origin"]), torch.tensor(GAP ** 2 / 4))
close("(∗) after Cat", torch.tensor(table["cat"]), torch.tensor(0.0))
close("(∗) after Res", torch.tensor(table["res"]), torch.tensor(0.0))

# %% [markdown]
# ## Part 3 · The restoring direction
#
# A restoration model runs the other way: it gets $y$ and must produce $x$. Take two clean points that
# share the same two degraded partners (`shared_partners`): each $y$ now has two clean partners.
# Hashing changes the endpoints of the bridge, but at restoration time the sampler starts from
# $\hat y = $ `endpoint(y)` and decoding uses $J(\hat x, y)$ — both know only $y$. Implement the floor of
# the restoring direction: (∗) for the map $y\mapsto x$ over the pairs.

# %% nbgrader={"grade": false, "grade_id": "restoration_floor", "locked": false, "schema_version": 3, "solution": true}
def restoration_floor(pairs):
    """(∗) of the best restoring map y → x over ``pairs`` (a PairSet)."""
    ### BEGIN SOLUTION
    return forced_floor(pairs.y, pairs.x)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "restoration_floor_value", "locked": true, "points": 1, "schema_version": 3, "solution": false}
# graded: two clean points, two shared partners: the best restoring map sits between the clean points
shared = shared_partners(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.0, -1.0]]))
floor = implemented(restoration_floor, shared)
close("the restoring floor", torch.tensor(floor), torch.tensor(forced_error(shared.y, shared.x).mse),
      hint="(∗) with starts y and ends x.")
print(f"restoring floor on the shared partners: {floor:.4f} (the same for Origin, Cat and Res)")

# %% [markdown]
# **Question (written, graded by hand; 2 points).** In part 2 hashing removed the forced error of the
# forward map; in part 3 the floor is the same with or without hashing. In three to five sentences,
# in the cell below: why can no pseudo-hashing recover information that $y$ lacks, and what does
# hashing buy in training?

# %% [markdown] nbgrader={"grade": true, "grade_id": "why_hashing_cannot_help", "locked": false, "points": 2, "schema_version": 3, "solution": true}
# At restoration only $y$ is known: the sampler starts at $\hat y=$ `endpoint(y)` and the decoder
# $J(\hat x, y)$ uses $y$ again, so the restored $x$ is a (random) function of $y$ alone. Two clean
# images with the same $y$ cannot be told apart by any such function: the floor (∗) of $y\mapsto x$ is
# a property of the data, not of the bridge. What hashing buys is in training: the pairs
# $(\hat x,\hat y)$ become one-to-one, so a bridge exists for every pair (Thm. 4.1) and Cor. 4.2 no
# longer forces the network to send one start to several ends.
#
# *Marking: 1 point for "the restored x depends on y only, so what y lacks stays lost" (the floor is
# a property of the data); 1 point for "hashing makes the training pairs one-to-one / removes the
# forward map's forced error (Cor. 4.2)".*
