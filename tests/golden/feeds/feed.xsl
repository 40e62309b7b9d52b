<?xml version="1.0" encoding="UTF-8"?>
<!--
  Shows an RSS 2.0 or Atom 1.0 feed of cccn-feeds as a readable page when someone opens
  it in a browser. Feed readers ignore this stylesheet and read the feed itself.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    exclude-result-prefixes="atom dc">
  <xsl:output method="html" encoding="UTF-8" indent="yes"
      doctype-system="about:legacy-compat"/>

  <xsl:variable name="title" select="/rss/channel/title | /atom:feed/atom:title"/>
  <xsl:variable name="self"
      select="/rss/channel/atom:link[@rel='self']/@href | /atom:feed/atom:link[@rel='self']/@href"/>
  <xsl:variable name="site"
      select="/rss/channel/link | /atom:feed/atom:link[@rel='alternate']/@href"/>

  <xsl:template match="/">
    <html lang="{/rss/channel/language | /atom:feed/@xml:lang}">
      <head>
        <meta charset="UTF-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (feed)</title>
        <style>
          body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto;
                 padding: 0 1rem; line-height: 1.5; color: #1d1d1f; }
          .subscribe { background: #eef4fb; border: 1px solid #b9d0ea; padding: .75rem 1rem;
                       border-radius: .4rem; }
          code { background: #fff; padding: .1rem .3rem; word-break: break-all; }
          article { border-top: 1px solid #ddd; padding: .75rem 0; }
          .meta { color: #555; font-size: .9rem; }
        </style>
      </head>
      <body>
        <h1><xsl:value-of select="$title"/></h1>
        <p class="subscribe"><strong>How to subscribe:</strong> this is
          <xsl:choose>
            <xsl:when test="contains($self, '/events')">a feed of forthcoming events</xsl:when>
            <xsl:otherwise>a news feed</xsl:otherwise>
          </xsl:choose>. Copy
          its address <code><xsl:value-of select="$self"/></code> into your feed reader
          (for example Thunderbird, Feedly, NetNewsWire or Inoreader) to be told of new items.
          Visit <a href="{$site}">the page</a> for more.</p>
        <p><xsl:value-of select="/rss/channel/description | /atom:feed/atom:subtitle"/></p>
        <xsl:apply-templates select="/rss/channel/item | /atom:feed/atom:entry"/>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="item">
    <article>
      <h2>
        <xsl:choose>
          <xsl:when test="link"><a href="{link}"><xsl:value-of select="title"/></a></xsl:when>
          <xsl:otherwise><xsl:value-of select="title"/></xsl:otherwise>
        </xsl:choose>
      </h2>
      <p class="meta"><xsl:value-of select="pubDate"/>
        <xsl:if test="dc:creator"> · <xsl:value-of select="dc:creator"/></xsl:if></p>
      <xsl:if test="description">
        <div><xsl:value-of select="description" disable-output-escaping="yes"/></div>
      </xsl:if>
    </article>
  </xsl:template>

  <xsl:template match="atom:entry">
    <article>
      <h2>
        <xsl:choose>
          <xsl:when test="atom:link[not(@rel) or @rel='alternate']">
            <a href="{atom:link[not(@rel) or @rel='alternate'][1]/@href}"><xsl:value-of select="atom:title"/></a>
          </xsl:when>
          <xsl:otherwise><xsl:value-of select="atom:title"/></xsl:otherwise>
        </xsl:choose>
      </h2>
      <p class="meta"><xsl:value-of select="atom:updated"/>
        <xsl:if test="atom:author/atom:name"> · <xsl:value-of select="atom:author/atom:name"/></xsl:if></p>
      <xsl:if test="atom:summary"><p><xsl:value-of select="atom:summary"/></p></xsl:if>
    </article>
  </xsl:template>
</xsl:stylesheet>
