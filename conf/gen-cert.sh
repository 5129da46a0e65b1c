#!/usr/bin/env bash
#
# Generate a local CA and a server certificate for kiln's TLS listener.
#
#   conf/gen-cert.sh DIR [rsa|ecdsa]        (default: ecdsa)
#
# Writes into DIR:
#   ca.key, ca.pem        local CA (reused if present, so it only has to be
#                         trusted once: curl --cacert DIR/ca.pem ...)
#   server.key            server private key (PKCS#8 PEM, mode 0600)
#   server.pem            server certificate (leaf, signed by ca.pem)
#   dhparam.pem           RFC 7919 ffdhe2048 group (Kore 4.1's tls_dhparam)
#
# The server certificate is (re)issued when missing, of the other key type,
# expiring within a day, or not signed by ca.pem. Names: DNS:localhost,
# IP:127.0.0.1, IP:::1, plus $KILN_TLS_SAN (e.g. "DNS:kiln.test,IP:10.0.0.5").
# Development use only.

set -euo pipefail

dir=${1:?usage: $0 DIR [rsa|ecdsa]}
type=${2:-ecdsa}
days=${KILN_TLS_DAYS:-365}

case $type in
rsa)	keyopt=(-algorithm RSA -pkeyopt rsa_keygen_bits:2048)
	usage=digitalSignature,keyEncipherment ;;
ecdsa)	keyopt=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256)
	usage=digitalSignature ;;
*)	echo "gen-cert: key type must be rsa or ecdsa" >&2; exit 2 ;;
esac

san="DNS:localhost,IP:127.0.0.1,IP:::1${KILN_TLS_SAN:+,$KILN_TLS_SAN}"

mkdir -p "$dir"
cd "$dir"
umask 077

if [ ! -s ca.key ] || [ ! -s ca.pem ]; then
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	    -out ca.key 2>/dev/null
	openssl req -x509 -new -key ca.key -sha256 -days 3650 \
	    -subj "/CN=kiln local development CA" \
	    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
	    -addext "keyUsage=critical,keyCertSign,cRLSign" \
	    -addext "subjectKeyIdentifier=hash" \
	    -out ca.pem
	rm -f server.pem
	echo "gen-cert: new CA $dir/ca.pem"
fi

current=""
if [ -s server.pem ] && [ -s server.key ]; then
	case $(openssl x509 -in server.pem -noout -text 2>/dev/null) in
	*rsaEncryption*)	current=rsa ;;
	*id-ecPublicKey*)	current=ecdsa ;;
	esac
	if ! openssl x509 -in server.pem -noout -checkend 86400 >/dev/null ||
	    ! openssl verify -CAfile ca.pem server.pem >/dev/null 2>&1; then
		current=""
	fi
fi

if [ "$current" != "$type" ]; then
	openssl genpkey "${keyopt[@]}" -out server.key 2>/dev/null
	openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
	    -CAcreateserial -sha256 -days "$days" -out server.pem \
	    -extfile <(printf '%s\n' \
		"basicConstraints=critical,CA:FALSE" \
		"keyUsage=critical,$usage" \
		"extendedKeyUsage=serverAuth" \
		"subjectKeyIdentifier=hash" \
		"authorityKeyIdentifier=keyid" \
		"subjectAltName=$san") 2>/dev/null
	rm -f server.csr
	echo "gen-cert: new $type server certificate $dir/server.pem ($san)"
fi

if [ ! -s dhparam.pem ]; then
	openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 \
	    -out dhparam.pem
fi

chmod 0644 ca.pem server.pem dhparam.pem
chmod 0600 ca.key server.key
