#!/usr/bin/env bash
# Test fixture: stand-ins for the public images deploy/ names, for machines that reach the Debian and NuGet
# registries but no image registry (ours, and CI). Each is built here from Debian packages on a root filesystem made
# with debootstrap, behaves as its official image does where deploy/ relies on it, is tagged llmstream-standin/*
# and is never pushed. Everywhere else compose pulls the official images; nothing in deploy/ names a stand-in.
#
#   build/standin-images.sh build   build the stand-ins that are missing or were made by another version of this script
#   build/standin-images.sh env     the variables that point deploy/ at them:  eval "$(build/standin-images.sh env)"
#   build/standin-images.sh sizes   the stand-ins and their sizes
#   build/standin-images.sh clean   remove them
#
# Stands in for                              with
#   mcr.microsoft.com/dotnet/sdk:10.0          Debian bookworm + this machine's .NET SDK (and its trusted CAs, for NuGet)
#   mcr.microsoft.com/dotnet/aspnet:10.0       Debian bookworm + the .NET and ASP.NET Core runtimes of that SDK, user app (APP_UID)
#   rabbitmq:3-management                      Debian's rabbitmq-server 3.10 + management plugin; RABBITMQ_DEFAULT_USER/PASS
#   redis:7.4-alpine                           Debian's redis-server 7.0, runs as redis in /data, no protected mode
#   nginx:1.27-alpine                          Debian's nginx 1.22; /etc/nginx/templates/*.template substituted at start
#   prom/prometheus:v3.5.0                     Debian's prometheus 2.42
# Not stood in for: otel/opentelemetry-collector-contrib and jaegertracing/jaeger (the monitoring profile's collector
# and trace store): Debian packages neither, and building them from source needs the Go module proxy, which is not
# reachable here.
#
# Needs root or sudo (debootstrap), a Docker engine, and debootstrap (make test-deps installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=llmstream-standin
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
# A stand-in made by another version of this script is built again.
recipe=$(sha256sum "$0" | cut -c1-16)
export DOCKER_BUILDKIT=0 # the classic builder: Debian's engine has no buildx, and compose v1 builds with it too

sdk_image=$prefix/dotnet-sdk:10.0
runtime_image=$prefix/dotnet-aspnet:10.0
rabbitmq_image=$prefix/rabbitmq:3-management
redis_image=$prefix/redis:7.4-alpine
nginx_image=$prefix/nginx:1.27-alpine
prometheus_image=$prefix/prometheus:v3.5.0
base_image=$prefix/debian:$suite
all_images=("$base_image" "$sdk_image" "$runtime_image" "$rabbitmq_image" "$redis_image" "$nginx_image" "$prometheus_image")

print_env() {
  cat <<EOF
export DOTNET_SDK_IMAGE=$sdk_image
export DOTNET_RUNTIME_IMAGE=$runtime_image
export NGINX_IMAGE=$nginx_image
export RABBITMQ_IMAGE=$rabbitmq_image
export REDIS_IMAGE=$redis_image
export PROMETHEUS_IMAGE=$prometheus_image
EOF
}

current() { [ "$(docker image inspect -f '{{index .Config.Labels "llmstream.standin.recipe"}}' "$1" 2>/dev/null)" = "$recipe" ]; }

# build_image NAME: a Dockerfile on stdin, built with the context folder $ctx.
build_image() {
  local name=$1 started=$SECONDS output
  if ! output=$(docker build --label "llmstream.standin.recipe=$recipe" -t "$name" -f - "$ctx" 2>&1); then
    echo "$output" >&2
    return 1
  fi
  echo "  $name built in $((SECONDS - started)) s"
}

base() {
  current "$base_image" && return
  local sudo="" dir started=$SECONDS
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  dir=$(mktemp -d)
  $sudo debootstrap --variant=minbase "$suite" "$dir" "$mirror" >/dev/null
  $sudo rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  $sudo tar -C "$dir" -c . | docker import -c 'CMD ["bash"]' -c "LABEL llmstream.standin.recipe=$recipe" - "$base_image" >/dev/null
  $sudo rm -rf "$dir"
  echo "  $base_image made by debootstrap in $((SECONDS - started)) s"
}

# apt-get install in one layer, without the package lists.
apt_install="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends"
apt_clean="rm -rf /var/lib/apt/lists/*"

dotnet_images() {
  local dotnet_root
  dotnet_root=${DOTNET_ROOT:-$(dirname "$(readlink -f "$(command -v dotnet)")")}
  ctx=$(mktemp -d)
  # The SDK's folder and the CA bundle this machine trusts (a TLS-inspecting proxy's CA, where there is one: the build
  # container restores from NuGet through it). Hard links where the file system allows, else copies.
  cp -al "$dotnet_root" "$ctx/dotnet" 2>/dev/null || cp -a "$dotnet_root" "$ctx/dotnet"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"
  current "$sdk_image" || build_image "$sdk_image" <<EOF
FROM $base_image
RUN $apt_install ca-certificates libicu72 libssl3 libstdc++6 zlib1g tzdata && $apt_clean
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
ENV DOTNET_RUNNING_IN_CONTAINER=true DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 \
    NUGET_CERT_REVOCATION_MODE=${NUGET_CERT_REVOCATION_MODE:-online}
EOF
  # The runtime image: the host, the .NET and ASP.NET Core shared frameworks; no SDK. User app, as APP_UID says.
  current "$runtime_image" || build_image "$runtime_image" <<EOF
FROM $base_image
RUN $apt_install ca-certificates libicu72 libssl3 libstdc++6 zlib1g tzdata && $apt_clean \
 && groupadd --gid=1654 app && useradd --no-log-init --uid=1654 --gid=1654 --create-home app
COPY dotnet/dotnet dotnet/LICENSE.txt /usr/share/dotnet/
COPY dotnet/host /usr/share/dotnet/host
COPY dotnet/shared/Microsoft.NETCore.App /usr/share/dotnet/shared/Microsoft.NETCore.App
COPY dotnet/shared/Microsoft.AspNetCore.App /usr/share/dotnet/shared/Microsoft.AspNetCore.App
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
ENV APP_UID=1654 ASPNETCORE_HTTP_PORTS=8080 DOTNET_RUNNING_IN_CONTAINER=true
EOF
  rm -rf "$ctx"
}

service_images() {
  ctx=$(mktemp -d)
  # rabbitmq: as the official image, a new node's default user comes from RABBITMQ_DEFAULT_USER/PASS, guest may
  # connect from other hosts, the management plugin is on, logs go to stdout; the server runs as rabbitmq.
  cat > "$ctx/rabbitmq-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ -n "${RABBITMQ_DEFAULT_USER:-}${RABBITMQ_DEFAULT_PASS:-}" ]; then
  printf 'default_user = %s\ndefault_pass = %s\n' "${RABBITMQ_DEFAULT_USER:-guest}" "${RABBITMQ_DEFAULT_PASS:-guest}" \
    > /etc/rabbitmq/conf.d/10-default-user.conf
fi
if [ "$1" = rabbitmq-server ]; then
  chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
  exec gosu rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server
fi
exec "$@"
EOF
  current "$rabbitmq_image" || build_image "$rabbitmq_image" <<EOF
FROM $base_image
RUN $apt_install rabbitmq-server gosu && $apt_clean \
 && mkdir -p /etc/rabbitmq/conf.d && echo '[rabbitmq_management].' > /etc/rabbitmq/enabled_plugins \
 && printf 'loopback_users.guest = false\nlisteners.tcp.default = 5672\nmanagement.tcp.port = 15672\n' > /etc/rabbitmq/conf.d/10-defaults.conf \
 && chown -R rabbitmq:rabbitmq /etc/rabbitmq /var/lib/rabbitmq
COPY rabbitmq-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
ENV RABBITMQ_LOGS=-
EXPOSE 5672 15672
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["rabbitmq-server"]
EOF

  # redis: as the official image, `redis-server ...` runs as redis in /data and answers other containers (the
  # official build turns protected mode off).
  cat > "$ctx/redis-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "${1#-}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ]; then
  shift
  set -- redis-server --protected-mode no "$@"
  if [ "$(id -u)" = 0 ]; then chown -R redis:redis /data; exec gosu redis "$@"; fi
fi
exec "$@"
EOF
  current "$redis_image" || build_image "$redis_image" <<EOF
FROM $base_image
RUN $apt_install redis-server redis-tools gosu && $apt_clean && mkdir /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
EOF

  # nginx: as the official image, each /etc/nginx/templates/*.template becomes /etc/nginx/conf.d/* at start with the
  # variables set in the environment substituted (and only those: nginx's own \$uri stays); logs go to stdout.
  cat > "$ctx/nginx-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
defined=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/${\1}/p' | tr '\n' ' ')
for template in /etc/nginx/templates/*.template; do
  [ -f "$template" ] || continue
  envsubst "$defined" < "$template" > "/etc/nginx/conf.d/$(basename "$template" .template)"
done
exec "$@"
EOF
  current "$nginx_image" || build_image "$nginx_image" <<EOF
FROM $base_image
RUN $apt_install nginx-light gettext-base wget && $apt_clean \
 && rm -f /etc/nginx/sites-enabled/default && mkdir -p /etc/nginx/templates /usr/share/nginx/html \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
COPY nginx-entrypoint.sh /docker-entrypoint.sh
RUN chmod 755 /docker-entrypoint.sh
EXPOSE 80
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["nginx", "-g", "daemon off;"]
EOF

  # prometheus: as the official image, the binary is the entry point and runs as nobody with its data in /prometheus.
  current "$prometheus_image" || build_image "$prometheus_image" <<EOF
FROM $base_image
RUN $apt_install prometheus && $apt_clean && mkdir -p /prometheus /etc/prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
EOF
  rm -rf "$ctx"
}

case "${1:-build}" in
  build)
    docker info >/dev/null 2>&1 || { echo "no Docker engine answers: nothing built" >&2; exit 1; }
    started=$SECONDS
    echo "stand-in images (a test fixture; never pushed):"
    base
    dotnet_images
    service_images
    echo "stand-ins ready in $((SECONDS - started)) s"
    ;;
  env) print_env ;;
  sizes) docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$prefix/*" ;;
  clean) docker image rm -f "${all_images[@]}" 2>/dev/null || true ;;
  *) echo "usage: $0 build|env|sizes|clean" >&2; exit 2 ;;
esac
