#!/bin/bash
# The lab's 2012 host profile (upgrader/lab/profiles.py): makes a lab host look like the Debian 7
# host an OpenNebula 3.x site ran on. Run by hostinit.sh inside the host, after pivot_root and
# before sshd starts; everything it changes or removes is changed in the host's overlay (a removed
# file becomes a whiteout there), never in the machine's /. Python 2.7 itself comes later, from the
# lab's apt repository (lab.py installs upgrader.lab.python2.HOST_PACKAGES with apt).
set -euo pipefail
files=$(cd "$(dirname "$0")" && pwd)
own=/usr/lib/upgrader-lab

# 1. The lab's own interpreter, made before python3 disappears: a copy of the base Python of the
# checkout's venv (the venv's bin/python is a symlink to it) under a path Ansible never looks at,
# with a pyvenv.cfg that keeps the machine's dist-packages out and a .pth that adds the checkout
# and its venv's packages. The oned simulator, onedb and the init script's lab_faults run on it.
venv=/opt/upgrader/.venv
base=$(readlink -f "$venv/bin/python")
series=$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
site=$own/python/lib/python$series/site-packages
mkdir -p "$own/python/bin" "$site"
cp "$base" "$own/python/bin/python"
printf 'home = %s\ninclude-system-site-packages = false\nversion = %s\n' \
  "$(dirname "$base")" "$series" >"$own/python/pyvenv.cfg"
printf '/opt/upgrader\n%s/lib/python%s/site-packages\n' "$venv" "$series" >"$site/upgrader-lab.pth"

# 2. No python3 where Ansible looks for an interpreter (merged /usr: /bin is /usr/bin), and no
# python-apt for any interpreter.
rm -f /usr/bin/python3* /usr/local/bin/python3* /usr/libexec/platform-python
apt=/usr/lib/python3/dist-packages
rm -rf "$apt/apt" "$apt"/apt_pkg* "$apt"/apt_inst* "$apt/aptsources" "$apt"/python_apt*

# 3. The tools of 2012 in front of today's, each saying what it imitates (files/2012/): findmnt
# of util-linux 2.20, crm_mon of Pacemaker 1.1 and fence_ipmilan of fence-agents 3.1 (a Python 2
# script) call the real ones kept under $own/real; Puppet 2.7.23's agent is a stand-in of its own.
mkdir -p "$own/real" /var/lib/puppet/state
for tool in /usr/bin/findmnt /usr/sbin/crm_mon /usr/sbin/fence_ipmilan; do
  mv "$tool" "$own/real/"
  install -m 0755 "$files/2012/${tool##*/}" "$tool"
done
install -m 0755 "$files/2012/puppet" /usr/bin/puppet
rm -rf /var/cache/puppet  # Puppet 2.7 kept its state under /var/lib/puppet only

# 4. Debian 7.11 "wheezy" (tools that default by distribution then choose libvirt-bin).
rm -f /etc/os-release
install -m 0644 "$files/2012/os-release" /etc/os-release
install -m 0644 "$files/2012/os-release" /usr/lib/os-release
echo 7.11 >/etc/debian_version
printf 'Debian GNU/Linux 7 \\n \\l\n\n' >/etc/issue
echo "Debian GNU/Linux 7" >/etc/issue.net
