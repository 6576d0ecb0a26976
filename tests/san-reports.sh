#!/bin/sh
# san-reports.sh DIR: fail, showing them, if sanitizer reports are in DIR
# (`make check SANITIZE=1`: every sanitized process writes its report
# there, see qctl/sanitize.c).  Frames the confined programs could not
# symbolize ("(BINARY+0xOFFSET)") get their function and line from
# addr2line.
dir=$1
n=0
for f in "$dir"/report.*; do
	[ -e "$f" ] || continue
	# LeakSanitizer's stop-the-world could not read a thread that was
	# exiting at that moment: a warning of the tool, not a finding (a
	# leak or an error would add its own lines, and count)
	w='^==.*==Unable to get registers from thread [0-9]*\.$'
	if grep -q "$w" "$f" && ! grep -qv "$w" "$f"; then
		echo "san-reports: ignored (LeakSanitizer warning only): $f: $(cat "$f")"
		continue
	fi
	n=$((n + 1))
	echo "==== sanitizer report $f"
	while IFS= read -r line; do
		printf '%s\n' "$line"
		case $line in
		*"#"[0-9]*" in "*) ;;
		*"#"[0-9]*" ("/*"+0x"*")")
			loc=${line##*(}
			loc=${loc%)}
			bin=${loc%+0x*}
			off=${loc##*+}
			[ -r "$bin" ] && command -v addr2line >/dev/null &&
				addr2line -f -i -p -C -e "$bin" "$off" 2>/dev/null |
				sed 's/^/        = /'
			;;
		esac
	done <"$f"
done
[ "$n" = 0 ] || { echo "sanitizers: $n report(s) in $dir" >&2; exit 1; }
