#!/usr/bin/env bash
# Issue 10, deploy/: no container engine or cluster here, so everything is checked offline.
# systemd units: `systemd-analyze verify` in a root where `make install` put the binaries (any
# output fails). Kubernetes: `kubectl kustomize` when kubectl is installed, then every object
# against the kubernetes-models / KEDA schemas, plus KEDA trigger keys, the real stream and group
# names, probes and references (deploy_check.js). Compose: the compose-spec schema, services,
# images and env names. Dockerfile: dockerfile-utils, stages, user, and packages checked against
# install-deps.sh and against the libraries the built binaries link.
. "$(dirname "$0")/lib.sh"
HERE=$ROOT/tests/integration
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- systemd ----------------------------------------------------------------------------------
R=$tmp/root
make -C "$ROOT" -s install DESTDIR="$R" PREFIX=/usr/local >"$tmp/install.log" 2>&1
check "make install DESTDIR=... PREFIX=/usr/local installs the five binaries" \
	bash -c "[ \$(ls '$R/usr/local/bin' | grep -c '^mailpipe') = 5 ]"
mkdir -p "$R/usr/lib/systemd" "$R/etc/systemd/system" "$R/etc/mailpipe"
cp -a /usr/lib/systemd/system "$R/usr/lib/systemd/" # the units ours name (network-online.target, ...)
cp "$ROOT"/deploy/systemd/*.service "$ROOT"/deploy/systemd/*.target "$R/etc/systemd/system/"
cp "$ROOT/deploy/systemd/mailpipe.env.example" "$R/etc/mailpipe/mailpipe.env"
if command -v systemd-analyze >/dev/null; then
	for u in "$R"/etc/systemd/system/mailpipe*; do
		out=$(systemd-analyze verify --root="$R" "$u" 2>&1)
		rc=$?
		[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/  /'
		check "systemd-analyze verify $(basename "$u"): exit 0 and not a word of output" [ "$rc" = 0 -a -z "$out" ]
	done
else
	echo "SKIP systemd-analyze verify: systemd-analyze is not installed"
fi
# verify accepts what it can ignore: the choices a user relies on are checked by name.
for s in scheduler fetcher parser writer; do
	u=$ROOT/deploy/systemd/mailpipe-$s.service
	check "mailpipe-$s.service runs mailpipe-$s, restarts on failure, is hardened, is part of mailpipe.target" bash -c "
		grep -qx 'ExecStart=/usr/local/bin/mailpipe-$s' '$u' && grep -qx 'Restart=on-failure' '$u' &&
		for k in DynamicUser=yes NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
			CapabilityBoundingSet= SystemCallFilter=@system-service PartOf=mailpipe.target \
			WantedBy=mailpipe.target EnvironmentFile=/etc/mailpipe/mailpipe.env; do
			grep -qx \"\$k\" '$u' || { echo \"  $s: no \$k\"; exit 1; }
		done && grep -q 'mailpipe-$s.service' '$ROOT/deploy/systemd/mailpipe.target'"
done
check "mailpipe-migrate.service runs mailpipe db migrate once, before the stages" bash -c "
	grep -qx 'ExecStart=/usr/local/bin/mailpipe db migrate' '$ROOT/deploy/systemd/mailpipe-migrate.service' &&
	grep -qx 'Type=oneshot' '$ROOT/deploy/systemd/mailpipe-migrate.service' &&
	grep -l 'After=.*mailpipe-migrate.service' '$ROOT'/deploy/systemd/mailpipe-*.service | wc -l | grep -qx 4"

# --- facts about the C side, for deploy_check.js ----------------------------------------------
# Option names: the table in common/config.c, and the contract's (DESIGN.md) when present, so
# that a name another branch adds to both (MAILPIPE_METRICS_ADDR) is known before the merge.
names=$(grep -o '"MAILPIPE_[A-Z0-9_]*"' "$ROOT/common/config.c" | tr -d '"')
design=$ROOT/../shared/DESIGN.md
[ -f "$design" ] || design=/work/shared/DESIGN.md
[ -f "$design" ] && names="$names $(grep -o 'MAILPIPE_[A-Z0-9_]*' "$design" | grep -v '_$')"
# Streams and their groups as the stages create them (common/stage.c) with the keys' names
# (common/config.c), for the default prefix.
groups=$(python3 - "$ROOT" <<'EOF'
import json, re, sys
root = sys.argv[1]
# Global keys are "{%s}:..." of the prefix; per-account work keys "%s:..." of the partition's
# tag, which is {mp} unpartitioned (deploy_check.js makes {mp:p} of them for partitions).
keys = dict(re.findall(r'cfg->(key_\w+), sizeof\(cfg->\1\), "(?:\{%s\}|%s)(:[\w:]+)"', open(f"{root}/common/config.c").read()))
out = {}
for key, group in re.findall(r'rstream_group_create\([^,]+, c->(key_\w+), "(\w+)"\)', open(f"{root}/common/stage.c").read()):
    out["{mp}" + keys[key]] = {"group": group, "stage": group[:-1]}
print(json.dumps(out))
EOF
)
# The Debian packages of the libraries the binaries link (their direct NEEDED entries), except
# libc6, which every Debian image has.
runtime=$(for b in "$R"/usr/local/bin/mailpipe*; do readelf -d "$b" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'; done |
	sort -u | while read -r lib; do
		p=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|64bit|x86_64/ {print $NF; exit}')
		[ -n "$p" ] && dpkg -S "$(readlink -f "$p")" 2>/dev/null | head -1 | cut -d: -f1
	done | sort -u | grep -vx libc6)
build=$(sed -n '/^PKGS="/,/"$/p' "$ROOT/deploy/install-deps.sh" | tr -d '"' | sed 's/^PKGS=//' | tr ' ' '\n' |
	grep -E -- '-dev$|^build-essential$|^pkg-config$')
echo "  streams: $groups"
echo "  runtime packages of the linked libraries:" $runtime
python3 - "$tmp/facts.json" "$ROOT" "$groups" "$names" "$runtime" "$build" "$R/usr/local/bin" <<'EOF'
import json, os, re, sys
out, root, groups, names, runtime, build, bindir = sys.argv[1:]
json.dump({"root": root, "groups": json.loads(groups), "configNames": sorted(set(names.split())),
           "runtimePackages": runtime.split(), "buildPackages": build.split(), "metricsPort": 9100,
           "rawBudget": int(re.search(r'"MAILPIPE_RAW_BUDGET", NUM\(raw_budget\), "(\d+)"',
                                      open(f"{root}/common/config.c").read()).group(1)),
           "binaries": sorted(os.listdir(bindir))}, open(out, "w"), indent=1)
EOF
check "the stages' streams and groups were found in the sources" python3 -c "
import json, sys
g = json.load(open(sys.argv[1]))['groups']
assert {k: v['group'] for k, v in g.items()} == {'{mp}:jobs': 'fetchers', '{mp}:jobs:first': 'fetchers', '{mp}:raw': 'parsers', '{mp}:parsed': 'writers'}, g" "$tmp/facts.json"

# --- Kubernetes, compose, Dockerfile ----------------------------------------------------------
NODE_MODULES=$("$ROOT/deploy/npm-deps.sh" dir)
if ! command -v node >/dev/null || ! [ -d "$NODE_MODULES/kubernetes-models" ]; then
	"$ROOT/deploy/npm-deps.sh" install >/dev/null 2>&1
fi
if ! command -v node >/dev/null || ! [ -d "$NODE_MODULES/kubernetes-models" ]; then
	echo "SKIP Kubernetes, KEDA, compose and Dockerfile schema checks: node or the npm packages cannot be had"
	finish
fi
export NODE_PATH=$NODE_MODULES
rendered=
if command -v kubectl >/dev/null; then
	kubectl kustomize "$ROOT/deploy/k8s" >"$tmp/rendered.yaml" 2>"$tmp/kustomize.err"
	check "kubectl kustomize deploy/k8s renders ($(kubectl version --client 2>/dev/null | sed -n 's/Kustomize Version: //p'))" \
		bash -c "[ -s '$tmp/rendered.yaml' ] && ! [ -s '$tmp/kustomize.err' ]"
	rendered=$tmp/rendered.yaml
else
	echo "SKIP kubectl kustomize: kubectl is not installed (Debian 12 has no package); deploy_check.js reads the resources itself"
fi
node "$HERE/deploy_check.js" "$tmp/facts.json" $rendered
check "deploy_check.js found nothing wrong" [ $? = 0 ]
if [ -n "$rendered" ]; then # the path a machine without kubectl takes
	node "$HERE/deploy_check.js" "$tmp/facts.json" >"$tmp/own.out" 2>&1
	check "deploy_check.js reading kustomization.yaml's resources itself agrees" [ $? = 0 ]
fi

# The checks can fail: a copy of deploy/ with a wrong group, an extra key, an unquoted stream.
mkdir -p "$tmp/bad"
cp -r "$ROOT/deploy" "$tmp/bad/"
sed -i 's/consumerGroup: parsers/consumerGroup: parser/; s/lagCount: "400"/lagCount: "400"\n        listLength: "5"/' \
	"$tmp/bad/deploy/k8s/keda.yaml"
python3 -c "
import json, sys
f = json.load(open(sys.argv[1])); f['root'] = sys.argv[2]; json.dump(f, open(sys.argv[3], 'w'))" \
	"$tmp/facts.json" "$tmp/bad" "$tmp/bad.json"
node "$HERE/deploy_check.js" "$tmp/bad.json" >"$tmp/bad.out" 2>&1
check "a wrong consumer group and an unknown trigger key are caught" bash -c "
	grep -q '^FAIL k8s: KEDA triggers.*read by group parsers, not parser' '$tmp/bad.out' &&
	grep -q 'unknown metadata key listLength' '$tmp/bad.out'"
sed -i 's/stream: "{mp}:raw"/stream: {mp}:raw/' "$tmp/bad/deploy/k8s/keda.yaml"
node "$HERE/deploy_check.js" "$tmp/bad.json" >"$tmp/bad.out" 2>&1
check "an unquoted {mp}:raw is caught" grep -q '^FAIL k8s: every resource file parses as YAML\|^FAIL k8s: stream names are strings' "$tmp/bad.out"

# --- Redis partitions: the overlay deploy/k8s-partitioned ---------------------------------------
# It is what its generator makes of the base (no drift), and passes the same checks, partition
# by partition: a fetcher, parser and writer Deployment per partition with MAILPIPE_PARTITION,
# ScaledObjects whose triggers read that partition's streams on that partition's server.
GEN=$ROOT/deploy/k8s-partitioned/generate.py
args=$(sed -n '1s/^# Generated by deploy\/k8s-partitioned\/generate.py \(.*\): do not edit.*/\1/p' "$ROOT/deploy/k8s-partitioned/workers.yaml")
python3 "$GEN" $args --out "$tmp/gen" &&
	check "deploy/k8s-partitioned is what generate.py $args makes of the base today" \
		diff -r -x generate.py "$ROOT/deploy/k8s-partitioned" "$tmp/gen"
check "generate.py refuses a partition map outside its partitions, exit 2" \
	bash -c "python3 '$GEN' 2 2=h:1 --out '$tmp/no' 2>/dev/null; [ \$? = 2 ]"
part_facts() { # DEPLOY-ROOT OUT
	python3 -c "
import json, sys
f = json.load(open(sys.argv[1])); f['root'] = sys.argv[2]; f['k8sDir'] = 'k8s-partitioned'
json.dump(f, open(sys.argv[3], 'w'))" "$tmp/facts.json" "$1" "$2"
}
part_facts "$ROOT" "$tmp/part.json"
node "$HERE/deploy_check.js" "$tmp/part.json" >"$tmp/part.out" 2>&1
rc=$?
sed 's/^/  /' "$tmp/part.out"
check "deploy_check.js passes the partitioned overlay ($args)" [ $rc = 0 ]
check "... and saw the six worker Deployments and their triggers on {mp:0} and {mp:1}" bash -c "
	grep -q 'PASS k8s: fetchers, parsers and writers each scale on .*fetcher/p1.*{mp:1}:jobs' '$tmp/part.out' &&
	grep -q '\"Deployment\":7' '$tmp/part.out'"
# It can fail: partition 1's parsers scaled on partition 0's stream, or on the wrong server.
mkdir -p "$tmp/pbad"
cp -r "$ROOT/deploy" "$tmp/pbad/"
part_facts "$tmp/pbad" "$tmp/pbad.json"
sed -i 's/stream: "{mp:1}:raw"/stream: "{mp:0}:raw"/' "$tmp/pbad/deploy/k8s-partitioned/workers.yaml"
node "$HERE/deploy_check.js" "$tmp/pbad.json" >"$tmp/pbad.out" 2>&1
check "a partition's stage scaled on another partition's stream is caught" \
	grep -q "mailpipe-parser-p1: scales partition 1's parsers on {mp:0}:raw" "$tmp/pbad.out"
cp "$ROOT/deploy/k8s-partitioned/workers.yaml" "$tmp/pbad/deploy/k8s-partitioned/"
sed -i '0,/address: redis-1/s//address: redis-9/' "$tmp/pbad/deploy/k8s-partitioned/workers.yaml"
node "$HERE/deploy_check.js" "$tmp/pbad.json" >"$tmp/pbad.out" 2>&1
check "a trigger on another server than its partition's is caught" \
	grep -q "{mp:1}:jobs is on redis-1.mailpipe.svc.cluster.local:6379, not redis-9" "$tmp/pbad.out"
finish
