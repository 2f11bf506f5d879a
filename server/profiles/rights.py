"""The rights of the people profiled, on the command line, and loading profiles into Redis:

    personabid profiles show ID      what is held about a user: each tag, its weight, the event types
                                     it came from (access)
    personabid profiles forget ID    delete the user from Redis now and add the pseudonym to the
                                     suppression list every store and every later build honours (erasure)
    personabid profiles push DIR     load a profile artifact into Redis

ID is the user's raw id as exchanges send it (user.buyeruid, user.id or device.ifa), or `-` to read it
from standard input (which keeps it out of the process list and the shell's history). It is pseudonymised
with the server's key at once and never printed or logged: the output names the pseudonym only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from personabid.config import Settings
from personabid.errors import ConfigError, PersonabidError
from personabid.privacy import KEY_ENV, Pseudonymizer
from personabid.profiles.artifact import EVENT_KINDS, Profiles, load_profiles
from personabid.profiles.store import check_key, parse_key
from personabid.profiles.suppression import Suppression, append

Held = list[tuple[str, float, int]]  # (tag, weight, event-kind mask)


def add_rights(subparsers: argparse._SubParsersAction) -> None:
    """Add `show`, `forget` and `push` to the `profiles` command's subparsers."""
    show = subparsers.add_parser(
        "show",
        help="print what is held about a user (access)",
        description="Print every profile held about the user with raw id ID: in the embedded profile "
        "artifact (--profiles) and in Redis (--redis-url), each tag with its weight and the event types "
        "it came from, and whether the user is suppressed. The id is pseudonymised with the server's key "
        "and never printed.",
    )
    _user_options(show, "also what this Redis holds, e.g. redis://127.0.0.1:6379/0")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(run=run_show)

    forget = subparsers.add_parser(
        "forget",
        help="erase a user: from Redis at once, and from every later build (erasure)",
        description="Add the pseudonym of raw id ID to the suppression list (--suppression), which every "
        "server re-reads and every build honours, and delete the user's profile from Redis "
        "(--redis-url) at once. The id is pseudonymised with the server's key and never printed.",
    )
    _user_options(forget, "the Redis the servers read profiles from: the user is deleted from it now")
    forget.set_defaults(run=run_forget)

    push = subparsers.add_parser(
        "push",
        help="load a profile artifact into Redis",
        description="Write every user of a profile artifact (a version, or a root's CURRENT one) to Redis, "
        "in pipelined batches, leaving out the users on the suppression list. The artifact must have "
        "been built with the server's pseudonymisation key.",
    )
    push.add_argument("path", metavar="DIR", type=Path, help="profile artifact root or version")
    push.add_argument("--redis-url", required=True, help="Redis to load, e.g. redis://127.0.0.1:6379/0")
    push.add_argument("--batch", type=int, default=10_000, help="users per pipeline (default %(default)s)")
    _key_options(push)
    push.set_defaults(run=run_push)


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, default=Settings.data_dir, help="data directory (default %(default)s)"
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        help=f"the server's pseudonymisation key (else ${KEY_ENV}, else DATA_DIR/pseudonym.key)",
    )
    parser.add_argument(
        "--suppression", type=Path, help="suppression list (default DATA_DIR/profiles.suppressed)"
    )


def _user_options(parser: argparse.ArgumentParser, redis_help: str) -> None:
    parser.add_argument("id", metavar="ID", help="the user's raw id, or - to read it from standard input")
    parser.add_argument(
        "--profiles", type=Path, help="embedded profile artifact root or version (default DATA_DIR/profiles)"
    )
    parser.add_argument("--redis-url", help=redis_help)
    _key_options(parser)


# -- the user and where things are -------------------------------------------------------------------


def pseudonymizer(args: argparse.Namespace) -> Pseudonymizer:
    """The server's pseudonymiser. Unlike the server, never creates a key: a new key would give every id a
    pseudonym nobody holds, and `show` would wrongly answer that nothing is held."""
    key_file: Path = args.key_file or args.data_dir / "pseudonym.key"
    if not os.environ.get(KEY_ENV) and not key_file.is_file():
        raise ConfigError(f"{key_file}: no pseudonymisation key (give --key-file, or set ${KEY_ENV})")
    return Pseudonymizer.from_environment(key_file)


def _pseudonym(args: argparse.Namespace, pseudonymize: Pseudonymizer) -> str:
    raw = sys.stdin.readline().strip() if args.id == "-" else args.id
    if not raw:
        raise ConfigError("the user id is empty")
    return pseudonymize(raw)


def _suppression_path(args: argparse.Namespace) -> Path:
    path: Path = args.suppression or args.data_dir / "profiles.suppressed"
    return path


def _embedded(args: argparse.Namespace, pseudonymize: Pseudonymizer) -> Profiles | None:
    """The embedded profiles to report on: --profiles (which must load), else DATA_DIR/profiles if
    there is one. Refused if built with another key, since every answer from them would be wrong."""
    path: Path | None = args.profiles
    if path is None:
        path = args.data_dir / "profiles"
        if not path.exists():
            return None
    profiles = load_profiles(path)
    check_key(profiles, pseudonymize)
    return profiles


def _redis(args: argparse.Namespace) -> Any:
    # Imported here: `show` and `forget` without --redis-url need no Redis client. The store only
    # deletes and reads by the names it holds, so it needs no index vocabulary.
    from personabid.index.vocab import Vocabulary
    from personabid.profiles.redis_store import RedisProfiles

    return RedisProfiles(args.redis_url, Vocabulary(()), suppressed=Suppression(_suppression_path(args)))


def held_in(profiles: Profiles, pseudonym: str) -> Held | None:
    """What the artifact holds about the user, by its own tag names (no remap: this is what is held)."""
    key = parse_key(pseudonym)
    row = profiles.arrays.find(key) if key is not None else -1
    if row < 0:
        return None
    tags, weights, kinds = profiles.arrays.user(row)
    names = profiles.vocab.tags
    rows = zip(tags.tolist(), weights.tolist(), kinds.tolist(), strict=True)
    return [(names[t], float(w), int(k)) for t, w, k in rows]


def event_types(mask: int) -> list[str]:
    """The event types of a kinds bit mask, in EVENT_KINDS order."""
    names = [name for bit, name in enumerate(EVENT_KINDS) if mask >> bit & 1]
    unknown = mask >> len(EVENT_KINDS)
    if unknown:
        names.extend(
            f"kind {len(EVENT_KINDS) + bit}" for bit in range(unknown.bit_length()) if unknown >> bit & 1
        )
    return names


# -- the commands ------------------------------------------------------------------------------------


def run_show(args: argparse.Namespace) -> int:
    pseudonymize = pseudonymizer(args)
    pseudonym = _pseudonym(args, pseudonymize)
    sources: list[dict[str, Any]] = []
    profiles = _embedded(args, pseudonymize)
    if profiles is not None:
        sources.append(
            _source("embedded", str(profiles.directory), profiles.version, held_in(profiles, pseudonym))
        )
    if args.redis_url:
        from personabid.profiles.redis_store import safe_url

        store = _redis(args)
        sources.append(_source("redis", safe_url(args.redis_url), None, store.held(pseudonym)))
    suppression = Suppression(_suppression_path(args))
    report = {"pseudonym": pseudonym, "suppressed": pseudonym in suppression, "sources": sources}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"pseudonym {pseudonym}")
    if report["suppressed"]:
        print("suppressed: yes (no server uses the profile, and builds leave the user out)")
    else:
        print("suppressed: no")
    if not sources:
        print(f"no profiles to look in: no {args.data_dir / 'profiles'}; give --profiles or --redis-url")
    for source in sources:
        where = source["where"] + (f" (version {source['version']})" if source["version"] else "")
        if source["tags"] is None:
            print(f"{source['source']} {where}: nothing held")
            continue
        print(f"{source['source']} {where}: {len(source['tags'])} tags")
        width = max((len(t["tag"]) for t in source["tags"]), default=0)
        for tag in source["tags"]:
            print(f"  {tag['tag']:<{width}}  {tag['weight']:.4f}  {', '.join(tag['events']) or '-'}")
    return 0


def _source(kind: str, where: str, version: str | None, held: Held | None) -> dict[str, Any]:
    tags = None
    if held is not None:
        tags = [
            {"tag": tag, "weight": round(weight, 6), "events": event_types(mask)}
            for tag, weight, mask in sorted(held, key=lambda h: (-h[1], h[0]))
        ]
    return {"source": kind, "where": where, "version": version, "tags": tags}


def run_forget(args: argparse.Namespace) -> int:
    pseudonymize = pseudonymizer(args)
    pseudonym = _pseudonym(args, pseudonymize)
    path = _suppression_path(args)
    # The suppression list first: it is what makes the erasure last (no later build or push brings the
    # user back), and it holds even if Redis cannot be reached now.
    if pseudonym in Suppression(path):
        print(f"pseudonym {pseudonym}: already on the suppression list {path}")
    else:
        append(path, pseudonym)
        print(
            f"pseudonym {pseudonym}: added to the suppression list {path}; servers stop using the profile "
            "when they next re-read the list, and every later build and push leaves the user out"
        )
    if args.redis_url:
        from personabid.profiles.redis_store import safe_url

        deleted = _redis(args).forget(pseudonym)
        state = "profile deleted" if deleted else "held no profile"
        print(f"redis {safe_url(args.redis_url)}: {state}")
    try:
        profiles = _embedded(args, pseudonymize)
    except PersonabidError:  # the erasure is done; what follows is only a note about the artifact
        profiles = None
    if profiles is not None and held_in(profiles, pseudonym) is not None:
        print(
            f"embedded {profiles.directory} (version {profiles.version}): still holds the user, unused "
            "(suppressed) until the next build leaves them out"
        )
    return 0


def run_push(args: argparse.Namespace) -> int:
    from personabid.profiles.redis_store import RedisProfiles, safe_url

    if args.batch < 1:
        raise ConfigError(f"--batch {args.batch}: give at least 1")
    profiles = load_profiles(args.path)
    check_key(profiles, pseudonymizer(args))
    suppression = Suppression(_suppression_path(args))
    store = RedisProfiles(args.redis_url, profiles.vocab, suppressed=suppression)
    written = store.push(profiles, batch=args.batch)
    print(
        f"pushed {written} users of profiles version {profiles.version} to {safe_url(args.redis_url)} "
        f"({profiles.arrays.users - written} suppressed left out)"
    )
    return 0
