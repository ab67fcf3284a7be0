"""The compiled parts of algostream (everything else is in pyproject.toml).

``algostream.marketdata._fastbook`` (Cython): the book stage's hot path (issue 27). It is
optional: where it cannot be compiled (no C compiler, as in the app image's build stage,
which takes the module built on the host instead: ``docker/build-images.sh``) the install
goes on with a warning and the book stage runs its pure-Python path, saying so in one
log line (``algostream.marketdata.native``).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):  # type: ignore[misc]
    """``build_ext`` that warns instead of failing when a module cannot be compiled."""

    def build_extensions(self) -> None:
        built = []
        for ext in self.extensions:
            try:
                self.build_extension(ext)
            except Exception as exc:  # no compiler, no headers: the pure-Python path runs
                self.warn(f"{ext.name} not compiled ({exc}): the pure-Python book path runs")
            else:
                built.append(ext)
        self.extensions = built  # (what is copied in place or into the wheel)


setup(
    cmdclass={"build_ext": OptionalBuildExt},
    ext_modules=cythonize(
        [
            Extension(
                "algostream.marketdata._fastbook",
                ["algostream/marketdata/_fastbook.pyx"],
                extra_compile_args=["-O2"],
            )
        ],
        compiler_directives={"language_level": "3"},
    ),
)
