"""Web sources: start URLs (and/or a sitemap), a same-site crawl bounded by depth, page
count and total bytes, robots.txt respected. Every request goes through the SSRF guard
(private, loopback and link-local addresses refused — after DNS and after each redirect —
unless the operator allowlists them). Pages are kept in memory for the sync that crawled
them; a page that cannot be fetched is an item refused with its reason."""

from __future__ import annotations

import asyncio
from collections import deque
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

from lxml import etree, html

from posturio.config import Settings
from posturio.navigator.connectors import Item, SourceUnavailable
from posturio.navigator.models import Source
from posturio.navigator.netguard import Allowlist, FetchError, GuardedFetcher

USER_AGENT = "PosturioNavigator"
MAX_TOTAL_BYTES = 200 * 1024 * 1024
PAGE_BYTES = 5 * 1024 * 1024
HTML_TYPES = ("text/html", "application/xhtml+xml")


class WebConnector:
    def __init__(self, settings: Settings, source: Source) -> None:
        config = source.config
        self.start = [str(u) for u in config.get("start_urls") or []]
        self.sitemap = config.get("sitemap")
        self.max_depth = int(config.get("max_depth", 2))
        self.max_pages = int(config.get("max_pages", 200))
        self.allow = Allowlist.parse(settings.navigator_url_allowlist)
        if not self.start and not self.sitemap:
            raise SourceUnavailable("a web source needs start_urls or a sitemap")
        self.sites = {
            urlsplit(u).netloc for u in [*self.start, *([self.sitemap] if self.sitemap else [])]
        }
        self._pages: dict[str, tuple[bytes, str | None]] = {}

    def _robots(self, fetcher: GuardedFetcher, site: str, scheme: str) -> RobotFileParser:
        robots = RobotFileParser()
        try:
            result = fetcher.fetch(f"{scheme}://{site}/robots.txt")
            lines = (
                result.content.decode(errors="replace").splitlines()
                if result.status_code == 200
                else []
            )
        except FetchError:
            lines = []
        robots.parse(lines)
        return robots

    def _links(self, base: str, content: bytes) -> list[str]:
        try:
            tree = html.fromstring(content)
        except (etree.ParserError, ValueError):
            return []
        out = []
        for href in tree.xpath("//a/@href"):
            url, _ = urldefrag(urljoin(base, str(href)))
            parts = urlsplit(url)
            if parts.scheme in ("http", "https") and parts.netloc in self.sites:
                out.append(url)
        return out

    def _sitemap_urls(self, fetcher: GuardedFetcher, sitemap: str) -> list[str]:
        try:
            result = fetcher.fetch(sitemap)
            tree = etree.fromstring(
                result.content, parser=etree.XMLParser(resolve_entities=False, no_network=True)
            )
        except (FetchError, etree.XMLSyntaxError) as exc:
            raise SourceUnavailable(f"sitemap unreadable: {exc}") from None
        return [str(loc).strip() for loc in tree.xpath("//*[local-name()='loc']/text()")]

    def _crawl(self) -> list[Item]:
        items: list[Item] = []
        total = 0
        with GuardedFetcher(self.allow, max_bytes=PAGE_BYTES) as fetcher:
            robots = {}
            queue: deque[tuple[str, int]] = deque((u, 0) for u in self.start)
            if self.sitemap:
                queue.extend((u, self.max_depth) for u in self._sitemap_urls(fetcher, self.sitemap))
            seen: set[str] = set()
            while queue and len(items) < self.max_pages:
                url, depth = queue.popleft()
                url = urldefrag(url)[0]
                if url in seen:
                    continue
                seen.add(url)
                parts = urlsplit(url)
                if parts.netloc not in self.sites:
                    continue
                if parts.netloc not in robots:
                    robots[parts.netloc] = self._robots(fetcher, parts.netloc, parts.scheme)
                if not robots[parts.netloc].can_fetch(USER_AGENT, url):
                    continue  # not ours to read: not even recorded as a document
                try:
                    result = fetcher.fetch(url)
                except FetchError as exc:
                    items.append(Item(url, 0, refused=str(exc)))
                    continue
                if result.status_code != 200:
                    items.append(Item(url, 0, refused=f"HTTP {result.status_code}"))
                    continue
                total += len(result.content)
                if total > MAX_TOTAL_BYTES:
                    items.append(Item(url, 0, refused="the crawl's size cap is reached"))
                    break
                media = result.media_type
                self._pages[url] = (result.content, media)
                items.append(Item(url, len(result.content), media))
                if depth < self.max_depth and (media or "").split(";")[0].strip() in HTML_TYPES:
                    queue.extend(
                        (link, depth + 1) for link in self._links(result.url, result.content)
                    )
        return items

    async def discover(self) -> list[Item]:
        return await asyncio.to_thread(self._crawl)

    async def fetch(self, item: Item) -> bytes:
        return self._pages.pop(item.uri)[0]  # each page is read once, then let go
