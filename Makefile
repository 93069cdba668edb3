# The stack, the way users drive it. Everything goes through `docker compose` (v2); settings come
# from .env (copy .env.example). `make help` lists the targets.

COMPOSE ?= docker compose
# `make logs SERVICE=obs` follows one service; empty follows all.
SERVICE ?=

.DEFAULT_GOAL := help
.PHONY: help up down clean logs ps verify build config

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

up: ## Build the images, start the stack, wait until every service is healthy
	$(COMPOSE) up --detach --build --wait

down: ## Stop and remove the containers (the named volumes, i.e. the data, are kept)
	$(COMPOSE) down

clean: ## Stop everything and delete the data volumes too
	$(COMPOSE) down --volumes --remove-orphans

logs: ## Follow the logs (all services, or SERVICE=name)
	$(COMPOSE) logs --follow --tail=200 $(SERVICE)

ps: ## Show the services and their health
	$(COMPOSE) ps

verify: ## Run one end-to-end verification now (obs verify against the running stack)
	$(COMPOSE) run --rm --no-deps obs verify

build: ## Build the images only
	$(COMPOSE) build

config: ## Validate docker-compose.yml and print it resolved
	$(COMPOSE) config
