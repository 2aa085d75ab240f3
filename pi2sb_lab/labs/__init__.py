"""Course labs (notebooks/labs/): the checks their graded cells call, and the nbgrader build and grading.

``labs.check``: comparisons whose failure message tells a student what is wrong (a sign, a swap, a
NaN, how far off); ``labs.course``: ``make labs`` and ``make grade`` (nbgrader's generate-assignment,
autograde and feedback steps). Nothing in the library imports this package.
"""
