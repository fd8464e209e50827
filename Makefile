# presenced: build and install as a systemd service (docs/operations.md, "Install").
#
#   make                      release build (swift build -c release)
#   sudo make install         binary, units, env example, docs; /etc/presenced/env if absent
#   sudo make uninstall       removes what install put there; keeps /etc/presenced/env and state
#
# Layout (override any variable on the command line):
#   $(BINDIR)/presenced                        /usr/local/bin/presenced
#   $(UNITDIR)/presenced.{service,socket}      /etc/systemd/system — the administrator's unit
#                                              directory: this is a local install, not a package
#   $(CONFDIR)/env.example, $(CONFDIR)/env     /etc/presenced (env: root:presenced 0640, created once)
#   $(DOCDIR)/operations.md                    /usr/local/share/doc/presenced
# DESTDIR=dir stages everything under dir (packaging, tests) and then neither creates the
# system user nor changes group ownership. BINARY=path installs that binary instead of building.

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
DOCDIR  ?= $(PREFIX)/share/doc/presenced
UNITDIR ?= /etc/systemd/system
CONFDIR ?= /etc/presenced
DESTDIR ?=
SWIFT   ?= swift
BINARY  ?=
# The service's user and group (DynamicUser= uses this static user when it exists, so that the
# service can read $(CONFDIR)/env on SIGHUP).
SERVICE_USER ?= presenced

INSTALL ?= install
RELEASE_BINARY := .build/release/presenced
ifeq ($(BINARY),)
INSTALL_BINARY := $(RELEASE_BINARY)
BUILD_DEPENDENCY := build
else
INSTALL_BINARY := $(BINARY)
BUILD_DEPENDENCY :=
endif

.PHONY: all build install install-files install-env install-user uninstall
# The install steps depend on each other's order (the group before the env file's chgrp).
.NOTPARALLEL:

all: build

build:
	$(SWIFT) build -c release --product presenced

install: install-files install-env
	@echo
	@echo "presenced is installed. Next steps:"
	@echo "  1. review $(CONFDIR)/env (ALLOWED_ORIGINS, REDIS_URL, CHAT_SERVICE_URL, …);"
	@echo "     ENV_FILE=$(CONFDIR)/env $(BINDIR)/presenced check-config"
	@echo "  2. the address: presenced.socket listens on port 8082 on every address;"
	@echo "     restrict it with: systemctl edit presenced.socket"
	@echo "  3. systemctl daemon-reload"
	@echo "  4. systemctl enable --now presenced.socket presenced.service"
	@echo "  5. journalctl -u presenced -o cat | jq ."

install-files: $(BUILD_DEPENDENCY)
	@test -f "$(INSTALL_BINARY)" || { echo "make: $(INSTALL_BINARY) does not exist (build first, or set BINARY=)" >&2; exit 1; }
	$(INSTALL) -D -m 0755 "$(INSTALL_BINARY)" "$(DESTDIR)$(BINDIR)/presenced"
	$(INSTALL) -d -m 0755 "$(DESTDIR)$(UNITDIR)" "$(DESTDIR)$(CONFDIR)" "$(DESTDIR)$(DOCDIR)"
	sed -e 's#/usr/local/bin/presenced#$(BINDIR)/presenced#' \
	    -e 's#/usr/local/share/doc/presenced#$(DOCDIR)#' \
	    -e 's#/etc/presenced/env#$(CONFDIR)/env#g' \
	    systemd/presenced.service > "$(DESTDIR)$(UNITDIR)/presenced.service"
	sed -e 's#/usr/local/share/doc/presenced#$(DOCDIR)#' \
	    systemd/presenced.socket > "$(DESTDIR)$(UNITDIR)/presenced.socket"
	chmod 0644 "$(DESTDIR)$(UNITDIR)/presenced.service" "$(DESTDIR)$(UNITDIR)/presenced.socket"
	$(INSTALL) -m 0644 systemd/presenced.env.example "$(DESTDIR)$(CONFDIR)/env.example"
	$(INSTALL) -m 0644 docs/operations.md "$(DESTDIR)$(DOCDIR)/operations.md"

# The live environment file is created once, with a fresh WS_TOKEN_SECRET, and never overwritten.
install-env: install-files install-user
	@env="$(DESTDIR)$(CONFDIR)/env"; \
	if [ -e "$$env" ]; then \
	  echo "keeping the existing $$env"; \
	  if [ -z "$(DESTDIR)" ] && [ "$$(stat -c %G "$$env")" != "$(SERVICE_USER)" ]; then \
	    echo "note: systemctl reload needs it readable by the service: chgrp $(SERVICE_USER) $$env && chmod 0640 $$env"; \
	  fi; \
	else \
	  secret=$$(od -An -vtx1 -N32 /dev/urandom | tr -d ' \n'); \
	  [ $${#secret} -eq 64 ] || { echo "make: cannot read 32 random bytes" >&2; exit 1; }; \
	  ( umask 077; sed "s/^WS_TOKEN_SECRET=$$/WS_TOKEN_SECRET=$$secret/" systemd/presenced.env.example > "$$env.new" ) && \
	  chmod 0640 "$$env.new" && \
	  if [ -z "$(DESTDIR)" ]; then chgrp "$(SERVICE_USER)" "$$env.new"; fi && \
	  mv "$$env.new" "$$env" && \
	  echo "created $$env (0640) with a new WS_TOKEN_SECRET"; \
	fi

# A static system user and group named like the unit: DynamicUser=yes then runs the service as
# this user, which may read the 0640 environment file. Skipped when staging into DESTDIR.
install-user:
# (getent also sees the transient user of a running DynamicUser= service: look at the files.)
	@if [ -z "$(DESTDIR)" ] && ! grep -q "^$(SERVICE_USER):" /etc/passwd; then \
	  if getent passwd "$(SERVICE_USER)" >/dev/null; then \
	    echo "make: $(SERVICE_USER) is a transient user now: systemctl stop presenced, then make install again" >&2; exit 1; \
	  fi; \
	  grep -q "^$(SERVICE_USER):" /etc/group || groupadd --system "$(SERVICE_USER)"; \
	  useradd --system --gid "$(SERVICE_USER)" --no-create-home --home-dir /nonexistent \
	    --shell /usr/sbin/nologin "$(SERVICE_USER)"; \
	  echo "created the system user $(SERVICE_USER)"; \
	fi

uninstall:
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
	  systemctl disable --now presenced.service presenced.socket 2>/dev/null || true; \
	fi
	rm -f "$(DESTDIR)$(BINDIR)/presenced" \
	      "$(DESTDIR)$(UNITDIR)/presenced.service" "$(DESTDIR)$(UNITDIR)/presenced.socket" \
	      "$(DESTDIR)$(CONFDIR)/env.example" "$(DESTDIR)$(DOCDIR)/operations.md"
	rmdir "$(DESTDIR)$(DOCDIR)" 2>/dev/null || true
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "kept: $(CONFDIR)/env (secrets), /var/lib/private/presenced (forward queue, dead letters)"
	@echo "and the system user $(SERVICE_USER); remove them by hand when no longer needed."
