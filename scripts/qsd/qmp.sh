#!/usr/bin/env bash
# Sends one QMP command to a QMP UNIX socket and prints the reply line (JSON) on stdout.
#   qmp.sh SOCKET '{"execute":"query-blockstats"}'
#   qmp.sh SOCKET flush-count     # prints flush_operations of the first block node
# Exits 1 when the reply is an error or nothing answers within 10 s. Needs only perl-base.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: qmp.sh SOCKET JSON|flush-count" >&2; exit 2; }
sock=$1 cmd=$2
want=""
if [ "$cmd" = flush-count ]; then
  cmd='{"execute":"query-blockstats","arguments":{"query-nodes":true}}'
  want=flush
fi
reply=$(perl -MIO::Socket::UNIX -e '
  my ($path, $cmd) = @ARGV;
  $SIG{ALRM} = sub { die "qmp: no answer from $path\n" };
  alarm 10;
  my $s = IO::Socket::UNIX->new(Peer => $path) or die "qmp: connect $path: $!\n";
  sub reply { while (my $l = <$s>) { next if $l =~ /"event"/; return $l } die "qmp: closed\n" }
  reply();                                   # greeting
  print $s qq({"execute":"qmp_capabilities"}\n);
  reply() =~ /"return"/ or die "qmp: capabilities refused\n";
  print $s "$cmd\n";
  print reply();
' "$sock" "$cmd")
case "$reply" in *'"error"'*) echo "$reply" >&2; exit 1 ;; esac
if [ "$want" = flush ]; then
  n=$(grep -o '"flush_operations": *[0-9]*' <<<"$reply" | head -1 | grep -o '[0-9]*$')
  [ -n "$n" ] || { echo "qmp: no flush_operations in $reply" >&2; exit 1; }
  echo "$n"
else
  echo "$reply"
fi
