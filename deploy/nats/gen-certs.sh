#!/bin/sh
# gen-certs.sh makes a private CA, a NATS server certificate and one client
# certificate per crawlmesh role (for mutual TLS), with openssl.
#
#   deploy/nats/gen-certs.sh DIR [SERVER_NAME...]
#
# DIR receives ca.pem, ca-key.pem, server.pem, server-key.pem and
# {master,worker,operator}.pem / -key.pem. SERVER_NAMEs are the DNS names
# or IP addresses clients dial (default: localhost 127.0.0.1); each becomes
# a subjectAltName, which is what clients verify. Keys are EC P-256, files
# are mode 0600, certificates last 825 days (the CA 10 years). Keep
# ca-key.pem offline: whoever holds it can mint certificates NATS trusts.
set -eu

if [ $# -lt 1 ]; then
	echo "usage: $0 DIR [SERVER_NAME...]" >&2
	exit 2
fi
dir=$1
shift
[ $# -gt 0 ] || set -- localhost 127.0.0.1

mkdir -p "$dir"
umask 077
cd "$dir"

san=""
for n in "$@"; do
	case $n in
	*:*) kind=IP ;;              # IPv6
	*[!0-9.]* | "") kind=DNS ;;
	*) kind=IP ;;                # IPv4
	esac
	san="${san:+$san,}$kind:$n"
done

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -f ca.pem ]; then
	key ca-key.pem
	openssl req -x509 -new -key ca-key.pem -sha256 -days 3650 -subj "/CN=crawlmesh NATS CA" \
		-addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out ca.pem
fi

# sign NAME CN EXTENSIONS
sign() {
	key "$1-key.pem"
	openssl req -new -key "$1-key.pem" -subj "/CN=$2" -out "$1.csr"
	printf '%s\n' "$3" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -sha256 -days 825 \
		-extfile "$1.ext" -out "$1.pem" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}

sign server "$1" "basicConstraints=CA:false
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san"
for role in master worker operator; do
	sign "$role" "crawlmesh-$role" "basicConstraints=CA:false
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
done
chmod 0644 ca.pem server.pem master.pem worker.pem operator.pem
echo "wrote $(pwd): ca.pem server.pem server-key.pem {master,worker,operator}.pem (SAN $san)"
