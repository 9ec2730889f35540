#!/bin/bash
# PID 1 of one lab host's PID namespace (already inside the host's network namespace).
# Builds an overlay root over the machine's /, mounts the lab share and the cloud's
# datastore, pivots into it, shapes it to its host profile, starts sshd on the host's address,
# then reaps orphans.
set -euo pipefail
name=$1 ip=$2 base=$3 lab=$4 cloud=$5 checkout=$6 profile=${7:-modern}
mount -t tmpfs -o size=1g,mode=0755 labroot "$base"
mkdir -p "$base/upper" "$base/work" "$base/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$base/root"
r=$base/root
mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys"
mount -t tmpfs -o mode=0755,size=1m labdev "$r/dev"
for n in null zero full random urandom tty; do touch "$r/dev/$n"; mount --bind "/dev/$n" "$r/dev/$n"; done
mkdir -p "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
ln -s /proc/self/fd "$r/dev/fd"
mount -t tmpfs -o mode=0755 run "$r/run"
mount -t tmpfs -o mode=1777 tmp "$r/tmp"
mkdir -p "$r/srv/lab"; mount --rbind "$lab/share" "$r/srv/lab"
if [ -n "$cloud" ] && [ -d "$lab/share/$cloud/datastores" ]; then
  mkdir -p "$r/var/lib/one/datastores"
  mount --bind "$lab/share/$cloud/datastores" "$r/var/lib/one/datastores"
fi
# The product's code, read-only, where the lab packages expect it; the lab's own
# directory and the machine's /home and /mnt stay out of sight.
mkdir -p "$r/opt/upgrader"; mount --bind "$checkout" "$r/opt/upgrader"
mount -o remount,bind,ro "$r/opt/upgrader"
for d in "$lab" "$checkout" /home /mnt; do [ -d "$r$d" ] && mount -t tmpfs -o mode=0755,size=1m mask "$r$d"; done
# root's dot files as on a new Debian host (written to the overlay, not the machine's /root):
# the machine's (a pyenv set-up, say) would run at every SSH command, each of Ansible's
# tasks included. /root itself stays: the venv's interpreter may live there.
for f in bashrc profile; do
  [ -f "/usr/share/base-files/dot.$f" ] && cp "/usr/share/base-files/dot.$f" "$r/root/.$f"
done
cp "$lab/etc-hosts" "$r/etc/hosts"
echo "nameserver 127.0.0.1" > "$r/etc/resolv.conf"
cd "$r"; mkdir -p .oldroot; pivot_root . .oldroot; cd /; umount -l /.oldroot; rmdir /.oldroot
hostname "$name"; echo "$name" > /etc/hostname
rm -f /sbin/init   # no systemd in a lab host: Ansible then uses the LSB init scripts
# A host of another era than the machine's (upgrader/lab/profiles.py).
if [ "$profile" != modern ]; then "/opt/upgrader/upgrader/lab/files/profile-$profile.sh"; fi
# The host's own fstab (not the machine's): the old datastore's line, which the storage switch
# comments out and the switch-back mounts again with `mount /var/lib/one/datastores`.
if [ -n "$cloud" ]; then
  printf '# /etc/fstab of lab host %s\n/srv/lab/%s/datastores /var/lib/one/datastores none bind 0 0\n' \
    "$name" "$cloud" > /etc/fstab
fi
# Only the lab's apt repository is reachable from a lab host.
rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
echo "deb [trusted=yes] file:/srv/lab/repo ./" > /etc/apt/sources.list.d/lab.list
mkdir -p /run/sshd /run/lock /var/run/one /var/lock/one /root/.ssh; chmod 0755 /run/sshd; chmod 700 /root/.ssh
cp /srv/lab/key/id_ed25519.pub /root/.ssh/authorized_keys
rm -f /etc/ssh/ssh_host_*; ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
rm -f /etc/ssh/sshd_config.d/*
uri="test:///srv/lab/$cloud/virt/$name.xml"
printf 'ListenAddress %s\nHostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nPermitRootLogin prohibit-password\nUseDNS no\nUsePAM no\nSetEnv LIBVIRT_DEFAULT_URI=%s CIB_file=/srv/lab/%s/pcmk/cib.xml\n' \
  "$ip" "$uri" "$cloud" > /etc/ssh/sshd_config.d/lab.conf
printf 'LIBVIRT_DEFAULT_URI=%s\nCIB_file=/srv/lab/%s/pcmk/cib.xml\n' "$uri" "$cloud" > /etc/environment
/usr/sbin/sshd -E /var/log/sshd.log
echo "READY $name"
trap 'exit 0' TERM
while :; do sleep 3600 & wait $! || true; done
