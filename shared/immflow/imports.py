"""The functions' cold start: keep off it what the official SDKs import but their synchronous calls never use.

A function instance imports the IMM SDK, oss2 and (for the Tablestore ledger) ``tablestore``, and each
imports far more than a synchronous call needs (docs/cold-start.md has the figures). `install` puts an
import hook first on ``sys.meta_path`` that loads each module named in `DEFERRED` as a *deferred* module:
the import binds a module object at once, and the module's code runs on the first attribute access
that needs it. The modules are the SDKs' own; nothing is replaced or copied, so an SDK version that
starts using one of them at import time or in a synchronous call still works (the module loads then,
and costs what it cost before). ``tests/functional/test_imports_diet.py`` runs every SDK call the
functions make, their error paths and an asynchronous call with the hook installed, and checks that
none of the deferred modules was loaded by the synchronous ones, so an upgrade that makes one of them
needed shows up there, not as a slower function.

Why each module is deferred (who imports it, and what for):

* ``aiohttp`` (with ``asyncio``'s event loop, ``yarl``, ``multidict``..., 100-150 ms): imported by
  ``Tea.core``, ``darabonba`` and ``tablestore.connection`` for their ``async`` methods only. Two names
  are taken from it by name at import time and only used by async code or annotations: `DEFERRED_NAMES`.
* ``asyncio`` (~25 ms): ``Tea.core``, ``darabonba``, ``alibabacloud_tea_util``, the credential
  providers, ``tablestore.client`` and SQLAlchemy import it at module level for their async paths.
  ``sqlalchemy.util.concurrency`` also takes ``asyncio.iscoroutine`` at import, for its async engine
  only: `DEFERRED_NAMES`. (SQLAlchemy still loads asyncio when a statement fails, an integrity error
  included: its error handling asks whether the error is asyncio's timeout or cancellation.)
* ``aiofiles``: the credential providers' async file reads (we hand the SDKs keys, never a profile).
* ``apscheduler.schedulers.background`` (~30 ms): the ECS RAM role credential provider's refresh
  thread, built only when that provider is (we hand the SDKs keys). Its package ``apscheduler`` too:
  its ``__init__`` only works out its own version, through ``importlib.metadata``.
* ``cryptography.hazmat.primitives.serialization``, ``...asymmetric.padding`` and ``...hashes`` (RSA/EC and
  SSH key formats, and cryptography's Rust extension, ~35 ms): ``alibabacloud_tea_openapi.utils`` signs
  with RSA only for the RSA key-pair signature algorithm; IMM requests are signed with HMAC
  (ACS3-HMAC-SHA256, ``hmac`` and ``hashlib``).
* ``darabonba.websocket`` (with the ``websocket-client`` package) and
  ``alibabacloud_tea_openapi.websocket_utils`` (~7 ms): ``alibabacloud_tea_openapi.client`` imports them
  for the WebSocket APIs, which IMM's task actions are not. Eight helper functions are taken from
  ``darabonba.websocket`` by name: `DEFERRED_NAMES`.
* ``Crypto.Cipher.AES``, ``Crypto.Cipher.PKCS1_OAEP``, ``Crypto.Cipher.PKCS1_v1_5``,
  ``Crypto.PublicKey.RSA``, ``Crypto.Random``, ``Crypto.Util.Counter`` (pycryptodome, with cffi's C
  parser, ~50 ms): oss2's client-side encryption (``CryptoBucket``), which the functions never use.
* ``aliyunsdkcore.client`` and ``aliyunsdkkms.request.v20160120``'s three requests (~30 ms): oss2's KMS key provider
  for that same client-side encryption.
* ``numpy`` (~70 ms): ``flatbuffers`` imports it for Tablestore's time-series encoder; the ledger
  writes rows, never time series.
* ``crc32c`` (~20 ms, most of it ``importlib.metadata`` reading crc32c's version): Tablestore's
  checksum of time-series rows, which the ledger never writes. (Tablestore's search and time-series
  protobuf modules cannot be deferred: its ``metadata`` and ``encoder`` read them at import time.)
* ``importlib.metadata`` (~10-18 ms: ``email``, ``zipfile``, ``csv``...): pydantic's plugin loader takes
  ``entry_points`` from it at import time to look for pydantic plugins among the installed
  distributions, which it does on the first model it builds (another ~6 ms reading every
  ``*.dist-info`` of a function's package). A function's package has no pydantic plugin, so `install`
  turns the search off (``PYDANTIC_DISABLE_PLUGINS=__all__``, unless the environment sets that variable
  already: set it empty to have plugins loaded). ``pydantic.networks`` takes ``version`` from it for
  the optional email validator only.
* ``google.protobuf.text_format`` (~8 ms): ``tablestore.protocol`` formats each request and response
  with it for its DEBUG log lines only. (The SDK formats them whenever its logger's own level is unset,
  even when nothing would print them; the Tablestore ledger sets that level: ``immflow.ledger.tablestore``.)
* ``aws_lambda_powertools.metrics`` and ``.tracing`` (~3 ms): Powertools' ``__init__`` imports them to
  re-export ``Metrics``, ``single_metric`` and ``Tracer`` (`DEFERRED_NAMES`); immflow uses its ``Logger``
  only. ``aws_lambda_powertools.utilities.jmespath_utils`` (with ``jmespath`` and ``gzip``, ~2 ms): the
  logger's ``inject_lambda_context(correlation_id_path=...)``, which immflow does not use.
* ``alibabacloud_imm20200930.models`` (~60 ms, 520 modules): the package's ``__init__`` imports every
  request and response class; deferred, it imports the one module that defines a class when the class
  is first asked for (`_ModelsPackage`), so a call loads its own request, response and body classes.

Two more things ``tablestore`` does at import that its calls never need, kept off the cold path by the
same hook:

* Its native extension ``tablestore.ots_sdk.ots_sdk`` (a 13 MB pybind11 module, tablestore 6.x) is built
  for CPython 3.12 only: on any other interpreter it is mapped, then refuses the interpreter from its
  init ("module was compiled for Python 3.12"), and the SDK falls back to its Python encoder and
  decoder, at every import (``tablestore.ots_sdk``'s ``__init__``, ``encoder`` and ``decoder`` each try
  it; ~7 ms with the file in the page cache, far more without). `NATIVE_BUILT_FOR` names the interpreter
  each such extension accepts; on another one the hook fails its import at once with the same kind of
  ImportError, so the SDK takes the same fallback without loading it.
* ``tablestore.plainbuffer.plain_buffer_consts`` reads the word size from ``platform.architecture()``,
  which runs the ``file`` command on the interpreter (a subprocess, ~7 ms of wall time). While that
  module runs (`ARCHITECTURE_READERS`), ``platform.architecture`` answers for the running interpreter
  without ``file``: the standard library's own answer when there is no file to look at, the word size of
  the interpreter's pointers, which is what the module reads (``'64bit'``).

``tests/functional/test_imports_diet.py`` checks both against the SDK installed: that the extension
really refuses this interpreter without the hook, and that the SDK ends up with the same encoder,
decoder and word size with it.

Also here: the garbage collector is paused over the cold start (`install` to the end of the first
invocation, `resume_collection`): the imports and first event allocate tens of thousands of objects
that live as long as the instance, and collecting them repeatedly costs 50-70 ms for nothing. At the
end of the first invocation they are frozen (``gc.freeze``) so later collections never scan them.
"""

from __future__ import annotations

import functools
import gc
import importlib
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # importlib.abc itself costs ~7 ms (importlib.resources): the hooks need no base class
    from importlib.abc import Loader

Handler = TypeVar("Handler", bound=Callable[[bytes, Any], Any])

DEFERRED: frozenset[str] = frozenset(
    {
        "asyncio",
        "aiohttp",
        "aiofiles",
        "apscheduler",
        "apscheduler.schedulers.background",
        "cryptography.hazmat.primitives.serialization",
        "cryptography.hazmat.primitives.asymmetric.padding",
        "cryptography.hazmat.primitives.hashes",
        "darabonba.websocket",
        "alibabacloud_tea_openapi.websocket_utils",
        "Crypto.Cipher.AES",
        "Crypto.Cipher.PKCS1_OAEP",
        "Crypto.Cipher.PKCS1_v1_5",
        "Crypto.PublicKey.RSA",
        "Crypto.Random",
        "Crypto.Util.Counter",
        "aliyunsdkcore.client",
        "aliyunsdkkms.request.v20160120.GenerateDataKeyRequest",
        "aliyunsdkkms.request.v20160120.DecryptRequest",
        "aliyunsdkkms.request.v20160120.EncryptRequest",
        "numpy",
        "crc32c",
        "importlib.metadata",
        "google.protobuf.text_format",
        "aws_lambda_powertools.metrics",
        "aws_lambda_powertools.tracing",
        "aws_lambda_powertools.utilities.jmespath_utils",
    }
)
"""Modules that load on first use rather than on import (the module docstring says why each)."""

DEFERRED_NAMES: dict[str, frozenset[str]] = {
    # tablestore.connection: ``from aiohttp import ClientTimeout``, called by AsyncConnectionPool only.
    # darabonba.response: ``from aiohttp import ClientResponse``, in an annotation inside a method;
    # darabonba.utils.stream: ``aiohttp.ClientSession`` and ``.ClientResponse`` in the annotations of the
    # async SSE wrapper's ``__init__``.
    "aiohttp": frozenset({"ClientTimeout", "ClientResponse", "ClientSession"}),
    # sqlalchemy.util.concurrency: ``iscoroutine = asyncio.iscoroutine``, for the async engine only.
    "asyncio": frozenset({"iscoroutine"}),
    # alibabacloud_credentials' ECS RAM role provider builds one when it is itself built.
    "apscheduler.schedulers.background": frozenset({"BackgroundScheduler"}),
    # alibabacloud_tea_openapi.client: the WebSocket APIs' settings and connection only.
    "darabonba.websocket": frozenset(
        {
            "get_web_socket_enable_reconnect",
            "get_web_socket_handshake_timeout",
            "get_web_socket_max_reconnect_times",
            "get_web_socket_ping_interval",
            "get_web_socket_pong_timeout",
            "get_web_socket_reconnect_interval",
            "get_web_socket_write_timeout",
            "new_websocket_client_and_connect",
        }
    ),
    # alibabacloud_tea_openapi.utils: RSA signatures (the RSA key-pair signature algorithm) only.
    "cryptography.hazmat.primitives.serialization": frozenset({"load_pem_private_key"}),
    # pydantic.plugin._loader: plugin discovery (off in functions: `install`); pydantic.networks: the
    # email validator's version check.
    "importlib.metadata": frozenset({"entry_points", "version"}),
    # aws_lambda_powertools' __init__ re-exports them; immflow uses its Logger only.
    "aws_lambda_powertools.metrics": frozenset({"Metrics", "single_metric"}),
    "aws_lambda_powertools.tracing": frozenset({"Tracer"}),
}
"""Names that SDK modules take from a deferred module at import time (``from X import Name``) but use
only in code that a synchronous call never runs: each is bound to a `_DeferredName` that loads the
module when it is called or looked into."""

NATIVE_BUILT_FOR: dict[str, tuple[int, int]] = {
    # tablestore 6.x's pybind11 extension: "module was compiled for Python 3.12" on any other interpreter.
    "tablestore.ots_sdk.ots_sdk": (3, 12),
}
"""Native extensions that load on one CPython version only: on another, their import fails at once."""

ARCHITECTURE_READERS: frozenset[str] = frozenset({"tablestore.plainbuffer.plain_buffer_consts"})
"""Modules whose code calls ``platform.architecture()`` for the interpreter's word size only: while they
run, it answers without running ``file`` (module docstring)."""

PYDANTIC_PLUGINS_VARIABLE = "PYDANTIC_DISABLE_PLUGINS"
"""pydantic reads it on every model build: ``__all__`` skips the search for plugins (module docstring)."""
MODELS_PACKAGE = "alibabacloud_imm20200930.models"
_MODEL_IMPORT = re.compile(r"^from \.(\w+) import (\w+)$", re.MULTILINE)

_lock = threading.RLock()
_gc_paused = False


class _DeferredModule(ModuleType):
    """A module whose code has not run yet: the first attribute it lacks runs it (`_load`)."""

    def __getattr__(self, name: str) -> Any:
        if name == "__path__":  # a package has it from its spec: this one is a plain module
            raise AttributeError(name)
        submodule = sys.modules.get(f"{self.__name__}.{name}")
        if submodule is not None:  # imported on its own, as a package's submodules may be
            return submodule
        if name in DEFERRED_NAMES.get(self.__name__, ()):
            return _deferred_name(self, name)
        _load(self)
        return getattr(self, name)

    def __dir__(self) -> list[str]:
        _load(self)
        return dir(self)


class _ModelsPackage(ModuleType):
    """``alibabacloud_imm20200930.models`` without its ``__init__``: a class imports its own module."""

    _modules: dict[str, str]

    def __getattr__(self, name: str) -> Any:
        module_name = self._modules.get(name)
        if module_name is None:
            _load(self)
            return getattr(self, name)
        value = getattr(importlib.import_module(f"{self.__name__}.{module_name}"), name)
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        _load(self)
        return dir(self)


class _DeferredName:
    """A name taken from a deferred module before the module ran: calling it or reading from it loads it."""

    def __init__(self, module: ModuleType, name: str) -> None:
        self._module = module
        self._name = name

    def resolve(self) -> Any:
        _load(self._module)
        return getattr(self._module, self._name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.resolve(), attribute)

    def __instancecheck__(self, instance: object) -> bool:
        return isinstance(instance, self.resolve())

    def __repr__(self) -> str:
        return f"<deferred {self._module.__name__}.{self._name}>"


_deferred_names: dict[tuple[str, str], _DeferredName] = {}


def _deferred_name(module: ModuleType, name: str) -> _DeferredName:
    with _lock:
        key = (module.__name__, name)
        if key not in _deferred_names:
            _deferred_names[key] = _DeferredName(module, name)
        return _deferred_names[key]


class _DeferringLoader:
    """Creates the module as the real loader would, and leaves running its code to `_load`."""

    def __init__(self, real: Loader) -> None:
        self.real = real

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        assert spec is not None
        if spec.name == MODELS_PACKAGE and spec.origin:
            with open(spec.origin, encoding="utf-8") as source:
                modules = {name: module_name for module_name, name in _MODEL_IMPORT.findall(source.read())}
            if modules:  # an SDK whose models are laid out otherwise is loaded as it is
                module.__class__ = _ModelsPackage
                module._modules = modules  # type: ignore[attr-defined]
                return
        if spec.name == MODELS_PACKAGE:
            self.real.exec_module(module)
            return
        module.__class__ = _DeferredModule


def _load(module: ModuleType) -> None:
    """Run a deferred module's code, in the module object every importer already holds."""
    with _lock:
        if type(module) not in (_DeferredModule, _ModelsPackage):
            return  # loaded meanwhile
        spec = module.__spec__
        assert spec is not None and isinstance(spec.loader, _DeferringLoader)
        real = spec.loader.real
        kind = type(module)
        module.__class__ = ModuleType
        if kind is _ModelsPackage:
            del module._modules
        spec.loader = real
        module.__loader__ = real
        try:
            real.exec_module(module)
        except BaseException:
            module.__class__ = kind
            spec.loader = _DeferringLoader(real)
            raise


class _WithoutFileCommandLoader:
    """Runs the module with ``platform.architecture`` answering for the interpreter without ``file``."""

    def __init__(self, real: Loader) -> None:
        self.real = real

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        import platform

        real_architecture = platform.architecture

        def architecture(
            executable: str = sys.executable, bits: str = "", linkage: str = ""
        ) -> tuple[str, str]:
            # No executable to look at: the stdlib answers from the interpreter's pointer size, no `file`.
            return real_architecture("" if executable == sys.executable else executable, bits, linkage)

        with _lock:
            platform.architecture = architecture
            try:
                self.real.exec_module(module)
            finally:
                platform.architecture = real_architecture


class _DeferringFinder:
    """Finds a `DEFERRED` module as the other finders would, and defers running it; refuses a
    `NATIVE_BUILT_FOR` extension on another interpreter; runs `ARCHITECTURE_READERS` without ``file``."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        built_for = NATIVE_BUILT_FOR.get(fullname)
        if built_for is not None and sys.version_info[:2] != built_for:
            raise ImportError(
                f"{fullname} is built for CPython {built_for[0]}.{built_for[1]} only "
                f"(this is {sys.version_info[0]}.{sys.version_info[1]}); not loaded",
                name=fullname,
            )
        if fullname not in DEFERRED and fullname != MODELS_PACKAGE and fullname not in ARCHITECTURE_READERS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is None or not hasattr(spec.loader, "exec_module"):
                    return spec
                wrapper = _WithoutFileCommandLoader if fullname in ARCHITECTURE_READERS else _DeferringLoader
                spec.loader = wrapper(spec.loader)  # type: ignore[assignment]  # a loader by protocol
                return spec
        return None


_finder = _DeferringFinder()


def install() -> None:
    """Defer the `DEFERRED` modules not imported yet, and pause the garbage collector until
    `resume_collection`. For function instances, and for the processes of the local chain that call the
    same SDKs: the local cloud's launcher (`localcloud.launcher.run`) and ``immflow demo``."""
    global _gc_paused
    with _lock:
        os.environ.setdefault(PYDANTIC_PLUGINS_VARIABLE, "__all__")
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
        if gc.isenabled():
            gc.disable()
            _gc_paused = True


def resume_collection() -> None:
    """End of the cold start: what it allocated is frozen out of later collections, and collection resumes."""
    global _gc_paused
    with _lock:
        if _gc_paused:
            _gc_paused = False
            gc.freeze()
            gc.enable()


def cold_start(handler: Handler) -> Handler:
    """`handler`, ending the cold start (`resume_collection`) when its first invocation returns or raises."""

    @functools.wraps(handler)
    def invoke(event: bytes, context: Any) -> Any:
        try:
            return handler(event, context)
        finally:
            resume_collection()

    return invoke  # type: ignore[return-value]


def uninstall() -> None:
    """Stop deferring modules imported from now on (modules deferred already load on first use)."""
    with _lock:
        if _finder in sys.meta_path:
            sys.meta_path.remove(_finder)


def deferred_and_unloaded() -> list[str]:
    """The deferred modules imported but whose code has not run (what a test checks stayed unused)."""
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if type(module) in (_DeferredModule, _ModelsPackage)
    )
