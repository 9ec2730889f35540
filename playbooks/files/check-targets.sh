# check-targets.sh: what a host runs, asked without Python (playbooks/check-targets.yml sends
# it with ansible.builtin.raw, whose answer feeds the targets-supported gate). POSIX sh, for the
# /bin/sh of a 2012 host (dash, bash 3/4, busybox). Read-only; a missing command is an answer.
#
# The play sets these shell variables before this text:
#   UPGRADER_PYTHONS      the names Ansible's interpreter discovery looks for with `command -v`,
#                         in its order (INTERPRETER_PYTHON_FALLBACK)
#   UPGRADER_INTERPRETER  ansible_python_interpreter (or interpreter_python): a path, or auto*
#   UPGRADER_PUPPET       the Puppet command the playbooks run (puppet_command)
#   UPGRADER_CRM_MON      the crm_mon the gates run (crm_mon_command's program)
#   UPGRADER_LIBVIRTD     libvirtd's init script as the inventory names it (libvirtd_service)
#
# It prints key=value lines (the value runs to the end of the line) and `end=ok` last, so an
# answer cut short is told from a whole one:
#   os.ID, os.VERSION_ID, os.PRETTY_NAME      /etc/os-release
#   lsb.DISTRIB_ID, lsb.DISTRIB_RELEASE       /etc/lsb-release
#   redhat_release, debian_version            the first line of those files
#   py.<n>.look                               the n-th name discovery looks for
#   py.<n>.path, py.set.path                  where it is (py.set: the configured one)
#   py.<n>.version, py.<n>.apt                its version (2.7.18), whether `import apt` works
#   py.<n>.error                              the first line it printed when it did not run
#   crm_mon.path, crm_mon.version             and the same for puppet.*
#   libvirt.initd, libvirt.unit, libvirt.upstart   libvirtd's service, each name found
#                                             (libvirt-bin, libvirtd, $UPGRADER_LIBVIRTD)
set -f  # the interpreter setting is split into words below, never expanded as a glob

say() { printf '%s=%s\n' "$1" "$2"; }

line1() { sed -n 1p "$1" 2>/dev/null; }

# KEY's value in a shell-style KEY=value file, its quotes taken off.
value() {
    sed -n "s/^$2=//p" "$1" 2>/dev/null | sed -n '1{s/^"\(.*\)"$/\1/;s/^'"'"'\(.*\)'"'"'$/\1/;p;}'
}

# Where a command is: on PATH (as discovery looks), else in the sbin directories a login
# shell of root has (a non-root ssh session often lacks them, Ansible's modules do not).
where() {
    found=$(command -v "$1" 2>/dev/null)
    case $found in /*) printf '%s\n' "$found"; return 0 ;; esac
    for dir in /usr/sbin /sbin /usr/local/sbin; do
        if [ -x "$dir/$1" ] && [ ! -d "$dir/$1" ]; then printf '%s\n' "$dir/$1"; return 0; fi
    done
    return 1
}

# $1: the key prefix; $2: the interpreter, split into words as a shebang line is.
probe() {
    out=$($2 -c 'import sys; print("%d.%d.%d" % tuple(sys.version_info[:3]))' 2>&1 </dev/null)
    if [ $? -eq 0 ]; then
        say "$1.version" "$(printf '%s\n' "$out" | sed -n '$p')"
        if $2 -c 'import apt' >/dev/null 2>&1 </dev/null; then
            say "$1.apt" yes
        else
            say "$1.apt" no
        fi
    else
        say "$1.error" "$(printf '%s\n' "$out" | sed -n '/[^[:space:]]/{p;q;}' | cut -c1-200)"
    fi
}

# -- the operating system
if [ -r /etc/os-release ]; then
    for key in ID VERSION_ID PRETTY_NAME; do say "os.$key" "$(value /etc/os-release $key)"; done
fi
if [ -r /etc/lsb-release ]; then
    for key in DISTRIB_ID DISTRIB_RELEASE; do say "lsb.$key" "$(value /etc/lsb-release $key)"; done
fi
[ -r /etc/redhat-release ] && say redhat_release "$(line1 /etc/redhat-release)"
[ -r /etc/debian_version ] && say debian_version "$(line1 /etc/debian_version)"

# -- Python: every name discovery looks for, in its order, then the configured interpreter
n=0
seen=
for name in $UPGRADER_PYTHONS; do
    n=$((n + 1))
    say "py.$n.look" "$name"
    path=$(command -v "$name" 2>/dev/null)
    case $path in
        /*) say "py.$n.path" "$path"; probe "py.$n" "$path"; seen=yes ;;
    esac
done
# Finding none, discovery falls back to /usr/bin/python, whatever its list says.
case "$seen: $UPGRADER_PYTHONS " in
    yes:* | *" /usr/bin/python "*) ;;
    *)
        n=$((n + 1))
        say "py.$n.look" /usr/bin/python
        if [ -x /usr/bin/python ]; then
            say "py.$n.path" /usr/bin/python
            probe "py.$n" /usr/bin/python
        fi
        ;;
esac
case $UPGRADER_INTERPRETER in
    '' | auto | auto_silent | auto_legacy | auto_legacy_silent) ;;
    *)
        say py.set.look "$UPGRADER_INTERPRETER"
        # shellcheck disable=SC2086 # its first word is the program
        set -- $UPGRADER_INTERPRETER
        path=$(command -v "$1" 2>/dev/null)
        case $path in
            /*) say py.set.path "$path"; probe py.set "$UPGRADER_INTERPRETER" ;;
        esac
        ;;
esac

# -- Pacemaker's crm_mon, Puppet
if path=$(where "${UPGRADER_CRM_MON:-crm_mon}"); then
    say crm_mon.path "$path"
    say crm_mon.version "$("$path" --version 2>&1 </dev/null | sed -n 1p)"
fi
# shellcheck disable=SC2086 # puppet_command may carry arguments
set -- ${UPGRADER_PUPPET:-puppet}
if path=$(where "$1"); then
    shift
    say puppet.path "$path"
    say puppet.version "$("$path" "$@" --version 2>&1 </dev/null | sed -n 1p)"
fi

# -- libvirtd's service: libvirt-bin (Debian <= 8, Ubuntu <= 18.04) or libvirtd, or the
# inventory's own name for it
case " libvirt-bin libvirtd " in
    *" $UPGRADER_LIBVIRTD "*) names="libvirt-bin libvirtd" ;;
    *) names="libvirt-bin libvirtd $UPGRADER_LIBVIRTD" ;;
esac
for name in $names; do
    [ -x "/etc/init.d/$name" ] && say libvirt.initd "$name"
    [ -f "/etc/init/$name.conf" ] && say libvirt.upstart "$name"
    for dir in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
        if [ -f "$dir/$name.service" ]; then say libvirt.unit "$name"; break; fi
    done
done
say end ok
