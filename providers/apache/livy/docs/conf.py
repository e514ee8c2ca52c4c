# Licensed to the Apache Software Foundation (ASF) under one
# or more contributor license agreements.  See the NOTICE file
# distributed with this work for additional information
# regarding copyright ownership.  The ASF licenses this file
# to you under the Apache License, Version 2.0 (the
# "License"); you may not use this file except in compliance
# with the License.  You may obtain a copy of the License at
#
#   http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing,
# software distributed under the License is distributed on an
# "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY
# KIND, either express or implied.  See the License for the
# specific language governing permissions and limitations
# under the License.
"""
Sphinx configuration of the provider's documentation, standalone.

Airflow builds every provider's docs in one big build; this file builds this provider's alone, in
the same layout: the guides next to this file and the Python API reference generated from the
docstrings under ``_api/airflow/providers/apache/livy/`` by sphinx-autoapi, which reads the source
without importing it (the docs environment has no Airflow). ``dev/test.sh`` runs it with warnings
as errors and nitpicky references::

    sphinx-build -W --keep-going -n -q -b html providers/apache/livy/docs build/docs
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
PROVIDER_SRC = DOCS.parent / "src"


def _version() -> str:
    init = (PROVIDER_SRC / "airflow/providers/apache/livy/__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', init, re.MULTILINE)
    if not match:
        sys.exit("conf.py: no __version__ in airflow/providers/apache/livy/__init__.py")
    return match.group(1)


project = "apache-airflow-providers-apache-livy"
author = "Apache Software Foundation"
copyright = "Apache Software Foundation"
release = version = _version()

extensions = ["sphinx.ext.autodoc", "autoapi.extension"]
exclude_patterns = ["_build", "_api/**/tests/**"]
root_doc = "index"
language = "en"
html_theme = "alabaster"
html_title = f"{project} {release}"
# Nothing to copy: the default static directory does not exist here.
html_static_path: list[str] = []

# The API reference, as Airflow's provider docs have it: _api/airflow/providers/apache/livy/index.
autoapi_type = "python"
autoapi_dirs = [str(PROVIDER_SRC / "airflow")]
autoapi_root = "_api"
autoapi_python_use_implicit_namespaces = True
autoapi_add_toctree_entry = False
autoapi_keep_files = False
autoapi_member_order = "bysource"
autoapi_python_class_content = "both"
# inherited-members: both hooks inherit their public methods (build_post_batch_body, ...) from a private
# base class, which the reference does not list on its own.
autoapi_options = [
    "members",
    "undoc-members",
    "inherited-members",
    "show-inheritance",
    "show-module-summary",
]
# Only the provider: the namespace packages above it (airflow, airflow.providers, airflow.providers.apache)
# hold nothing of ours, and get_provider_info is generated data.
autoapi_ignore = ["*/get_provider_info.py"]

# Every cross reference into this provider must resolve (sphinx-build -n). References into other
# projects cannot: their inventories (intersphinx) would need the network, which the build must not.
# They are ignored by package name only, so a typo inside airflow.providers.apache.livy still fails.
nitpicky = True
_EXTERNAL = (
    r"airflow\.(?!providers\.apache\.livy\b).*",
    r"(aiohttp|requests|tenacity|pydantic|pendulum|sqlalchemy|jinja2|asyncio|datetime|enum|logging)\..*",
    r"(typing|collections\.abc|types)\..*",
)
nitpick_ignore_regex = [(r"py:.*", pattern) for pattern in _EXTERNAL]
# Private names are not in the reference; the one that shows is the hooks' shared base class in their
# "Bases:" line (its public methods are listed on each hook, see inherited-members).
nitpick_ignore_regex.append((r"py:(obj|class)", r"(.*\.)?_LivyHookBase"))
# The same for imports autoapi cannot follow (Airflow, the HTTP and common-compat providers are not in
# this build); a reference that needs one of them is ignored above or fails.
suppress_warnings = ["autoapi.python_import_resolution"]
