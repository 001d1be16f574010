#!/bin/bash
# Vendored from the project's shared conformance kit (shared/conformance/autobahn/setup.sh).
# Installs the Autobahn|Testsuite (the reference WebSocket conformance suite) from the package
# registries alone: the suite and its pinned dependencies from PyPI, and a Python 2.7 runtime
# unpacked from Debian 11 packages (the suite is Python 2 code). Nothing is installed system-wide:
# everything lands under $AUTOBAHN_HOME (default: a folder in the temp dir).
#   setup.sh            -> prints the path of the python2.7 to use with run.sh
set -eu
H=${AUTOBAHN_HOME:-${TMPDIR:-/tmp}/autobahn-suite}
mkdir -p "$H/dl"
py3=${PYTHON3:-python3}
if [ ! -x "$H/py27root/usr/bin/python2.7" ]; then
  # The Debian mirror this machine already uses, with the older suite that still has python2.7.
  base=$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -n1)
  [ -n "$base" ] || base=$(grep -h -m1 -E '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1)
  [ -n "$base" ] || { echo "no Debian mirror found in the apt configuration" >&2; exit 1; }
  A="$H/apt"; mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $base bullseye main" >"$A/sources.list"
  o=(-o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/nonexistent
     -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache")
  apt-get "${o[@]}" update -qq
  (cd "$A/debs" && apt-get "${o[@]}" download -qq python2.7 python2.7-minimal libpython2.7-minimal \
     libpython2.7-stdlib libpython2.7 libssl1.1 libffi7)
  for f in "$A"/debs/*.deb; do dpkg -x "$f" "$H/py27root"; done
fi
export LD_LIBRARY_PATH="$H/py27root/usr/lib/x86_64-linux-gnu"
PY2="$H/py27root/usr/bin/python2.7"
if [ ! -d "$H/site/autobahntestsuite" ]; then
  "$py3" -m pip download -q --isolated --no-deps 'pip==20.3.4' 'setuptools==44.1.1' 'wheel==0.37.1' \
    'autobahntestsuite==25.10.1' -d "$H/dl"
  "$PY2" "$H"/dl/pip-20.3.4-py2.py3-none-any.whl/pip install -q --isolated --no-index --target "$H/site" \
    "$H"/dl/pip-20.3.4-*.whl "$H"/dl/setuptools-44.1.1-*.whl "$H"/dl/wheel-0.37.1-*.whl
  export PYTHONPATH="$H/site"
  # the suite's own pins
  "$PY2" -m pip install -q --isolated --no-cache-dir --target "$H/site" 'autobahn[twisted]==0.10.9' \
    Twisted==19.10.0 zope.interface==4.6.0 txaio==2.1.0 jinja2==2.11.3 markupsafe==1.1.1 \
    Werkzeug==1.0.1 klein==17.10.0 pyOpenSSL==19.1.0 cryptography==3.3.2 service_identity==18.1.0 \
    unittest2==1.1.0 six==1.16.0 incremental==16.10.1
  "$PY2" -m pip install -q --isolated --no-cache-dir --no-deps --target "$H/site" "$H"/dl/autobahntestsuite-25.10.1.tar.gz
  # --target skips *-nspkg.pth files: make 'zope' a plain namespace package
  [ -f "$H/site/zope/__init__.py" ] || echo "__path__ = __import__('pkgutil').extend_path(__path__, __name__)" >"$H/site/zope/__init__.py"
fi
PYTHONPATH="$H/site" "$PY2" -c 'import autobahntestsuite' && echo "$H"
