#!/usr/bin/env bash
# The boot test's checks, run inside the booted Debian tree by
# ringfront-boottest.service (boot_test.go puts this folder at
# /root/boottest with the packages in a/ and their upgrade in b/, and
# reads results afterwards). Each check writes one line to results:
# "ok NAME" or "FAIL NAME: why"; the last line is "done". Then the
# machine powers off.
#
# It does what the README's "Deploying" section tells a newcomer: apt
# install the packages, write the secrets, edit the configs,
# systemctl enable --now; then it checks each unit under systemd.
set -uo pipefail
cd /root/boottest
. ./env # VERSION_A, VERSION_B: what --version must say before and after the upgrade
results=/root/boottest/results
: > "$results"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
DAEMONS=(dnslb vipwatch appnode)

ok() { echo "ok $1" | tee -a "$results"; }
fail() { echo "FAIL $1: $2" | tee -a "$results"; }
# check NAME CMD...: one result from a command's exit status; a failure
# reports the command's last lines of output.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else fail "$name" "$(tail -n 4 <<<"$out" | tr '\n' ' ')"; fi
  [ -z "$out" ] || sed 's/^/    /' <<<"$out" # for the journal
}
# within SECONDS CMD...: retries CMD until it succeeds, at most SECONDS.
within() {
  local end=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt "$end" ] || { "$@"; return 1; }
    sleep 0.2
  done
}
prop() { systemctl show -p "$2" --value "$1"; }

# --- The machine: a link for vipwatch's VIPs -----------------------------
# A dummy interface where the kernel has the driver, else a veth pair
# (both ends here): vipwatch sees an Ethernet link either way.
ip link add rf0 type dummy 2>/dev/null || ip link add rf0 type veth peer name rf0p
ip link set rf0 up
ip link set rf0p up 2>/dev/null
ip addr add 198.51.100.11/24 dev rf0

systemctl is-system-running --wait >/dev/null

# --- 1. Install as the README says ----------------------------------------
check "install: apt install ./ringfront-*.deb" apt install -y ./a/ringfront-*.deb

installed() {
  local d=$1 f
  for f in /usr/bin/$d /usr/lib/systemd/system/$d.service /usr/share/man/man8/$d.8.gz \
    /usr/share/man/man8/$d-version.8.gz /usr/share/bash-completion/completions/$d \
    /usr/share/zsh/vendor-completions/_$d /usr/share/fish/vendor_completions.d/$d.fish \
    /usr/share/doc/ringfront-$d/README.md /usr/share/doc/ringfront-$d/LICENSE; do
    [ -s "$f" ] || { echo "missing $f"; return 1; }
  done
  grep -qx "/etc/ringfront/$d.yaml" /var/lib/dpkg/info/ringfront-$d.conffiles || { echo "/etc/ringfront/$d.yaml is not a conffile"; return 1; }
  [ "$(stat -c %a /etc/ringfront/$d.yaml)" = 644 ] || { echo "/etc/ringfront/$d.yaml is not 0644"; return 1; }
  [ "$(stat -c %a /etc/ringfront/$d)" = 700 ] || { echo "/etc/ringfront/$d/ is not 0700"; return 1; }
}
not_started() {
  local d=$1
  [ "$(systemctl is-active "$d")" = inactive ] || { echo "$d is $(systemctl is-active "$d") after install"; return 1; }
  [ "$(systemctl is-enabled "$d")" = disabled ] || { echo "$d is $(systemctl is-enabled "$d") after install"; return 1; }
}
versions() {
  local d=$1 want=$2 got
  got=$($d --version) || return 1
  [[ $got == "$d $want (revision "* ]] || { echo "$d --version: $got, want $want"; return 1; }
  [ "$($d version)" = "$got" ] || { echo "$d version differs from --version"; return 1; }
}
for d in "${DAEMONS[@]}"; do
  check "$d: installed tree (binary, unit, man, completions, docs, conffile, modes)" installed "$d"
  check "$d: not enabled or started before the admin wrote a config" not_started "$d"
  check "$d: --version and version say $VERSION_A" versions "$d" "$VERSION_A"
done

# --- 2. The admin writes the secrets and edits the configs ----------------
head -c 32 /dev/urandom | base64 > /etc/ringfront/vipwatch/vipwatch.key
chmod 600 /etc/ringfront/vipwatch/vipwatch.key
head -c 32 /dev/urandom | base64 > /etc/ringfront/appnode/cluster.key
chmod 600 /etc/ringfront/appnode/cluster.key
# dnslb: an admin token as a credential too; health checks that take 2 s
# (the targets are on rf0's segment and never answer ARP), so READY=1
# comes 2 s after the start.
head -c 16 /dev/urandom | base64 > /etc/ringfront/dnslb/admin.token
chmod 600 /etc/ringfront/dnslb/admin.token
sed -i -e 's#^  token_file: "".*#  token_file: /etc/ringfront/dnslb/admin.token#' \
  -e 's#^          interval: 1s#          interval: 3s#' -e 's#^          timeout: 500ms#          timeout: 2s#' \
  /etc/ringfront/dnslb.yaml
# vipwatch: the VIPs on rf0, no witness (nothing on this segment answers).
sed -i -e 's#^interface: eth0#interface: rf0#' -e '/^witness:/,/^  fall:/d' -e '/^fault_release_after:/d' \
  /etc/ringfront/vipwatch.yaml
# appnode: a cluster of one.
sed -i -e '/^  - "127.0.0.1:808[23]"/d' -e 's#^replicas: 2#replicas: 1#' /etc/ringfront/appnode.yaml

for d in "${DAEMONS[@]}"; do
  check "$d: check-config passes on the edited config" "$d" check-config
done

# --- 3. systemctl enable --now: active only after READY=1 ----------------
started() {
  local d=$1 start active status
  systemctl enable --now "$d" || { journalctl -u "$d" -n 20 --no-pager; return 1; }
  [ "$(systemctl is-active "$d")" = active ] || { echo "$d is $(systemctl is-active "$d")"; return 1; }
  [ "$(systemctl is-enabled "$d")" = enabled ] || return 1
  status=$(prop "$d" StatusText)
  [ -n "$status" ] || { echo "$d sent no STATUS= with READY=1"; return 1; }
  start=$(prop "$d" ExecMainStartTimestampMonotonic)
  active=$(prop "$d" ActiveEnterTimestampMonotonic)
  echo "$d: active $(((active - start) / 1000)) ms after its start, status \"$status\""
  if [ "$d" = dnslb ] && [ $((active - start)) -lt 1500000 ]; then
    echo "dnslb was active $(((active - start) / 1000)) ms after its start, before its 2 s health round"
    return 1
  fi
}
ready_now() { curl -fsS "http://$1/readyz"; }
for d in "${DAEMONS[@]}"; do
  check "$d: systemctl enable --now; active only after READY=1 (Type=notify)" started "$d"
done
check "dnslb: /readyz answers as soon as it is active" ready_now 127.0.0.1:8053
check "appnode: /readyz answers as soon as it is active" ready_now 127.0.0.1:9081
# vipwatch says READY=1 once its socket is bound, before its first round.
check "vipwatch: /readyz answers within 5 s" within 5 ready_now 127.0.0.1:8054

# --- 4. Each daemon answers ------------------------------------------------
dig_is() { [ "$(dig @127.0.0.1 -p 5353 +short +time=1 +tries=1 "$1" A)" = "$2" ]; }
dig_answers() {
  local www
  www=$(dig @127.0.0.1 -p 5353 +short +time=1 +tries=1 www.example.org A) || return 1
  grep -q '^198\.51\.100\.' <<<"$www" || { echo "www.example.org: '$www'"; return 1; }
  dig_is mail.example.org 198.51.100.25 || { dig @127.0.0.1 -p 5353 mail.example.org A; return 1; }
}
check "dnslb: answers dig" dig_answers
appnode_http() {
  local token
  token=$(appnode user create joe --server 127.0.0.1:8081 | awk '/^token /{print $2}') || return 1
  [ -n "$token" ] || return 1
  APPNODE_TOKEN=$token appnode user post joe "hello from the boot test" --server 127.0.0.1:8081 || return 1
  curl -fsS http://127.0.0.1:8081/v1/users/joe/posts | grep -q "hello from the boot test"
}
check "appnode: answers HTTP (a user, a post, its feed)" appnode_http
vips_held() {
  local a
  a=$(ip addr show dev rf0)
  grep -q '198.51.100.10/24 .*rf0:vw' <<<"$a" && grep -q '198.51.100.20/24' <<<"$a" &&
    grep -q '2001:db8::10/64' <<<"$a" && grep -q '2001:db8::20/64' <<<"$a"
}
vipwatch_status() {
  within 10 vips_held || { ip addr show dev rf0; return 1; }
  vipwatch status | tee /dev/stderr | grep -q '198.51.100.10'
}
check "vipwatch: holds its VIPs on rf0 and reports them in status" vipwatch_status
build_info() { curl -fsS "http://$1/metrics" | grep "^$2_build_info{" | grep -q "version=\"$3\""; }
check "dnslb: dnslb_build_info says $VERSION_A" build_info 127.0.0.1:8053 dnslb "$VERSION_A"
check "vipwatch: vipwatch_build_info says $VERSION_A" build_info 127.0.0.1:8054 vipwatch "$VERSION_A"
check "appnode: appnode_build_info says $VERSION_A" build_info 127.0.0.1:9081 appnode "$VERSION_A"

# --- 5. A dynamic user with only the unit's capabilities -------------------
confined() {
  local d=$1 want=$2 pid uid caps
  pid=$(prop "$d" MainPID)
  [ "$pid" -gt 0 ] || return 1
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
  if [ "$uid" -lt 61184 ] || [ "$uid" -gt 65519 ]; then
    echo "$d runs as uid $uid, not a dynamic user (61184-65519)"; return 1
  fi
  getent passwd "$uid" | grep -q "^$d:" || echo "(uid $uid has no name: nss-systemd is not installed)"
  for c in CapEff CapPrm CapBnd CapAmb; do
    caps=$(awk -v c="$c:" '$1 == c {print $2}' "/proc/$pid/status")
    [ "$caps" = "$want" ] || { echo "$d $c = $caps, want $want"; return 1; }
  done
}
check "dnslb: dynamic user, capabilities CAP_NET_BIND_SERVICE only" confined dnslb 0000000000000400
check "vipwatch: dynamic user, capabilities CAP_NET_ADMIN CAP_NET_RAW only" confined vipwatch 0000000000003000
check "appnode: dynamic user, no capabilities" confined appnode 0000000000000000
secret_credential() {
  local d=$1 f=$2 pid
  pid=$(prop "$d" MainPID)
  tr '\0' '\n' < "/proc/$pid/environ" | grep -q "^CREDENTIALS_DIRECTORY=" || { echo "no CREDENTIALS_DIRECTORY"; return 1; }
  # The dynamic user cannot read the file itself; the daemon got it anyway.
  if setpriv --reuid="$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" --regid=65534 --clear-groups cat "$f" >/dev/null 2>&1; then
    echo "the service's user can read $f directly"; return 1
  fi
}
check "dnslb: its admin token comes as a credential, unreadable on disk to its user" secret_credential dnslb /etc/ringfront/dnslb/admin.token
check "vipwatch: its key comes as a credential, unreadable on disk to its user" secret_credential vipwatch /etc/ringfront/vipwatch/vipwatch.key
check "appnode: its cluster secret comes as a credential, unreadable on disk to its user" secret_credential appnode /etc/ringfront/appnode/cluster.key
check "dnslb: status with the admin token" dnslb status

# --- 6. systemctl reload applies a changed record ----------------------------
reload_applies() {
  sed -i 's#"mail.example.org. 300 IN A 198.51.100.25"#"mail.example.org. 300 IN A 198.51.100.26"#' /etc/ringfront/dnslb.yaml
  systemctl reload dnslb || return 1
  within 10 dig_is mail.example.org 198.51.100.26
}
check "dnslb: systemctl reload applies a changed record" reload_applies

# --- 7. An unknown key fails the start, and the journal names it ------------
unknown_key() {
  local d=$1 key="bogus_${1}_key"
  cp "/etc/ringfront/$d.yaml" "/root/boottest/$d.yaml.good"
  echo "$key: 1" >> "/etc/ringfront/$d.yaml"
  if systemctl restart "$d"; then echo "$d started with an unknown key"; return 1; fi
  within 5 sh -c "journalctl -u $d -n 50 --no-pager | grep -q '$key: unknown key'" || {
    echo "the journal does not name $key"; journalctl -u "$d" -n 10 --no-pager; return 1; }
  cp "/root/boottest/$d.yaml.good" "/etc/ringfront/$d.yaml"
  systemctl reset-failed "$d"
  systemctl start "$d"
}
for d in "${DAEMONS[@]}"; do
  check "$d: a config with an unknown key fails the start; the journal names the key" unknown_key "$d"
done

# --- 8. systemd restarts appnode after SIGKILL --------------------------------
restarted() {
  local before after
  before=$(prop appnode MainPID)
  systemctl kill -s KILL appnode
  within 15 sh -c "[ \"\$(systemctl show -p MainPID --value appnode)\" != $before ] && [ \"\$(systemctl is-active appnode)\" = active ]" || return 1
  [ "$(prop appnode NRestarts)" -ge 1 ] || return 1
  curl -fsS http://127.0.0.1:8081/v1/users/joe/posts | grep -q "hello from the boot test"
}
check "appnode: systemctl kill -s KILL is restarted by systemd (and the post is still there)" restarted

# --- 9. systemctl stop vipwatch leaves no vipwatch address ------------------
no_vips_left() {
  systemctl stop vipwatch || return 1
  local a
  a=$(ip addr show dev rf0)
  if grep -Eq '198\.51\.100\.(10|20)/|2001:db8::(10|20)/|rf0:vw' <<<"$a"; then echo "$a"; return 1; fi
  grep -q '198.51.100.11/24' <<<"$a" || { echo "the admin's own address went too"; return 1; }
}
check "vipwatch: systemctl stop leaves no vipwatch address on rf0" no_vips_left

# --- 10. An upgrade keeps the edited configs ----------------------------------
sums() { md5sum /etc/ringfront/*.yaml; }
upgrade() {
  local before dnslb_pid
  before=$(sums)
  dnslb_pid=$(prop dnslb MainPID)
  apt install -y ./b/ringfront-*.deb || return 1
  [ "$(sums)" = "$before" ] || { echo "a config changed"; diff <(echo "$before") <(sums); return 1; }
  ls /etc/ringfront/*.dpkg-* 2>/dev/null && return 1
  grep -q 198.51.100.26 /etc/ringfront/dnslb.yaml || return 1
  [ "$(prop dnslb MainPID)" != "$dnslb_pid" ] || { echo "dnslb was not restarted"; return 1; }
  [ "$(systemctl is-active dnslb appnode | sort -u)" = active ] || return 1
  [ "$(systemctl is-active vipwatch)" = inactive ] || { echo "the upgrade started a stopped vipwatch"; return 1; }
  within 10 build_info 127.0.0.1:8053 dnslb "$VERSION_B" || return 1
  within 10 dig_is mail.example.org 198.51.100.26
}
check "upgrade: keeps every edited config, restarts running daemons on the new version" upgrade
for d in "${DAEMONS[@]}"; do
  check "$d: --version says $VERSION_B after the upgrade" versions "$d" "$VERSION_B"
done

# --- 11. Remove keeps the config, purge removes everything --------------------
removed() {
  apt-get remove -y -q ringfront-vipwatch || return 1
  [ ! -e /usr/bin/vipwatch ] && [ -e /etc/ringfront/vipwatch.yaml ] && [ -e /etc/ringfront/vipwatch/vipwatch.key ]
}
check "vipwatch: apt remove keeps the config and the key" removed
purged() {
  apt-get purge -y -q ringfront-appnode || return 1
  local f
  for f in /usr/bin/appnode /usr/lib/systemd/system/appnode.service /etc/ringfront/appnode.yaml \
    /etc/ringfront/appnode /var/lib/private/appnode /var/lib/appnode \
    /etc/systemd/system/multi-user.target.wants/appnode.service; do
    [ ! -e "$f" ] && [ ! -L "$f" ] || { echo "$f is still there"; return 1; }
  done
  [ "$(systemctl is-active appnode)" != active ] || return 1
  [ -e /etc/ringfront/dnslb.yaml ] && [ "$(systemctl is-active dnslb)" = active ]
}
check "appnode: apt purge removes the config, the secrets, the data and the unit; dnslb runs on" purged

echo done >> "$results"
