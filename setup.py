"""The compiled parts of algostream (everything else is in pyproject.toml).

``algostream.marketdata._fastbook`` (Cython): the book stage's hot path (issue 27). It is
optional: where it cannot be compiled (no C compiler, as in the app image's build stage,
which takes the module built on the host instead) the install goes on and the book stage
runs its pure-Python path, saying so in one log line.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension(
                "algostream.marketdata._fastbook",
                ["algostream/marketdata/_fastbook.pyx"],
                extra_compile_args=["-O2"],
                optional=True,
            )
        ],
        compiler_directives={"language_level": "3"},
    )
)
