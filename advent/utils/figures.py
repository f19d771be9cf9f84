"""Figures drawn with PIL and numpy only: a grid of labelled image tiles, a histogram with
a marked threshold, a bar chart with error bars, a colour legend, a colour bar, a line of
text, and images stacked into one."""
import math

import numpy as np
from PIL import Image, ImageDraw

PAD = 4
BACKGROUND = 'white'
INK = 'black'
MARK = (200, 30, 30)


def _text_size(draw, text):
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text)
    return right - left, bottom - top


def _as_image(tile):
    return tile if isinstance(tile, Image.Image) else Image.fromarray(np.asarray(tile))


def _fit(tile, size):
    """`tile` at `size` (width, height): pixels repeated when enlarging (a mask keeps its
    colours), averaged when shrinking."""
    if tile.size == tuple(size):
        return tile
    enlarging = size[0] >= tile.size[0] and size[1] >= tile.size[1]
    return tile.convert('RGB').resize(tuple(size), Image.NEAREST if enlarging else Image.BOX)


def tile_grid(rows, header, tile_size=None):
    """A grid of tiles with a label before each row and a title over each column.

    rows: [(label, [tiles])], a tile an RGB array (H, W, 3) or a PIL image; labels may hold
    several lines. header: the column titles. Every tile is drawn at tile_size (width,
    height), by default the first tile's size. Returns an RGB PIL image."""
    tiles = [[_as_image(t) for t in row_tiles] for _, row_tiles in rows]
    tile_w, tile_h = tile_size or tiles[0][0].size
    probe = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    label_w = max([_text_size(probe, label)[0] for label, _ in rows] + [0]) + 2 * PAD
    head_h = max([_text_size(probe, title)[1] for title in header] + [0]) + 2 * PAD
    columns = max(len(t) for t in tiles)
    canvas = Image.new('RGB', (label_w + columns * (tile_w + PAD), head_h + len(rows) * (tile_h + PAD)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(header):
        draw.text((label_w + j * (tile_w + PAD), PAD), title, fill=INK)
    for i, ((label, _), row_tiles) in enumerate(zip(rows, tiles)):
        y = head_h + i * (tile_h + PAD)
        draw.multiline_text((PAD, y + max(0, (tile_h - _text_size(draw, label)[1]) // 2)), label, fill=INK)
        for j, tile in enumerate(row_tiles):
            canvas.paste(_fit(tile, (tile_w, tile_h)), (label_w + j * (tile_w + PAD), y))
    return canvas


def histogram_image(values, bins, cut=None, size=(480, 180), title='', below='#4c9a4c', above='#c0504d'):
    """A histogram of `values` as an RGB PIL image. bins: an int or the bin edges (as
    numpy.histogram takes them). With `cut`, the bars whose centre lies at or below it are
    drawn in `below`, the others in `above`, and a line marks the cut."""
    values = np.asarray(values, np.float64)
    counts, edges = np.histogram(values, bins=bins)
    width, height = size
    canvas = Image.new('RGB', size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    text_h = _text_size(draw, '0')[1]
    left, right, top, bottom = 8 * PAD + _text_size(draw, str(counts.max(initial=0)))[0], 3 * PAD, \
        2 * PAD + text_h, 3 * PAD + text_h
    plot_w, plot_h = width - left - right, height - top - bottom
    draw.text((left, PAD), title, fill=INK)
    lo, hi = float(edges[0]), float(edges[-1])

    def x_of(value):
        return left + (value - lo) / ((hi - lo) or 1.0) * plot_w

    peak = max(int(counts.max(initial=0)), 1)
    for count, a, b in zip(counts, edges[:-1], edges[1:]):
        if count == 0:
            continue
        colour = below if cut is None or (a + b) / 2 <= cut else above
        draw.rectangle([x_of(a), top + plot_h * (1 - count / peak), max(x_of(b) - 1, x_of(a)), top + plot_h],
                       fill=colour)
    draw.line([left, top + plot_h, left + plot_w, top + plot_h], fill=INK)
    draw.line([left, top, left, top + plot_h], fill=INK)
    draw.text((PAD, top), str(peak if counts.any() else 0), fill=INK)
    draw.text((PAD, top + plot_h - text_h), '0', fill=INK)
    low_text, high_text = f'{lo:.4g}', f'{hi:.4g}'
    draw.text((left, top + plot_h + PAD), low_text, fill=INK)
    draw.text((left + plot_w - _text_size(draw, high_text)[0], top + plot_h + PAD), high_text, fill=INK)
    if cut is not None:
        x = x_of(cut)
        draw.line([x, top, x, top + plot_h], fill=MARK, width=2)
        cut_text = f'cut {cut:.4g}'
        draw.text((min(x + PAD, width - right - _text_size(draw, cut_text)[0]), top), cut_text, fill=MARK)
    return canvas


def stack_images(images, pad=2 * PAD):
    """Images one below the other, left-aligned, on a white RGB canvas."""
    images = [image.convert('RGB') for image in images]
    width = max(image.width for image in images)
    height = sum(image.height for image in images) + pad * (len(images) - 1)
    canvas = Image.new('RGB', (width, height), BACKGROUND)
    y = 0
    for image in images:
        canvas.paste(image, (0, y))
        y += image.height + pad
    return canvas


def axis_ticks(peak):
    """Round tick values from 0 to at most `peak`: steps of 1, 2 or 5 times a power of ten, 3 to 6 ticks."""
    if peak <= 0:
        return [0.0]
    step = next(m * 10 ** e for e in range(math.floor(math.log10(peak)) - 1, math.floor(math.log10(peak)) + 2)
                for m in (1, 2, 5) if peak / (m * 10 ** e) <= 5)
    return [round(k * step, 10) for k in range(int(peak / step + 1e-9) + 1)]


def _vertical_text(text):
    probe = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    width, height = _text_size(probe, text)
    image = Image.new('RGB', (width + 2, height + 4), BACKGROUND)
    ImageDraw.Draw(image).text((0, 0), text, fill=INK)
    return image.rotate(90, expand=True)


def bar_chart(labels, values, errors=None, title='', size=(560, 240), value_format='{:.2f}', colour='#4f81bd',
              y_label=''):
    """Vertical bars of `values` (one per label) from zero, each with its value written over it,
    and a y axis with round ticks, titled `y_label`; `errors` (same length, None for none) draws
    +- that much as a whisker. RGB PIL image."""
    errors = list(errors) if errors is not None else [None] * len(values)
    width, height = size
    canvas = Image.new('RGB', size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    text_h = _text_size(draw, '0')[1]
    label_h = max([_text_size(draw, label)[1] for label in labels] + [text_h])
    peak = max([v + (e or 0) for v, e in zip(values, errors)] + [1e-12])
    ticks = axis_ticks(peak)
    tick_texts = [f'{tick:g}' for tick in ticks]
    axis_title = _vertical_text(y_label) if y_label else None
    axis = (axis_title.width + PAD if axis_title else 0) + max(_text_size(draw, s)[0] for s in tick_texts) + 2 * PAD
    top, bottom, left = 2 * PAD + 2 * text_h + PAD, 2 * PAD + label_h, 2 * PAD + axis
    plot_w, plot_h = width - left - 2 * PAD, height - top - bottom
    draw.text((2 * PAD, PAD), title, fill=INK)
    slot = plot_w / max(len(values), 1)

    def y_of(value):
        return top + plot_h * (1 - value / peak)

    for tick, text in zip(ticks, tick_texts):
        draw.line([left - PAD, y_of(tick), left, y_of(tick)], fill=INK)
        draw.text((left - PAD - 2 - _text_size(draw, text)[0], y_of(tick) - text_h / 2), text, fill=INK)
    draw.line([left, top, left, top + plot_h], fill=INK)
    if axis_title:
        canvas.paste(axis_title, (PAD, int(top + (plot_h - axis_title.height) / 2)))
    for k, (label, value, error) in enumerate(zip(labels, values, errors)):
        x0, x1 = left + k * slot + slot * 0.15, left + (k + 1) * slot - slot * 0.15
        draw.rectangle([x0, y_of(value), x1, top + plot_h], fill=colour)
        centre = (x0 + x1) / 2
        text = value_format.format(value) + ('' if error is None else f' +- {value_format.format(error)}')
        if error is not None:
            draw.line([centre, y_of(value + error), centre, y_of(max(value - error, 0))], fill=INK, width=2)
            for y in (y_of(value + error), y_of(max(value - error, 0))):
                draw.line([centre - slot * 0.1, y, centre + slot * 0.1, y], fill=INK, width=2)
        text_w = _text_size(draw, text)[0]
        draw.text((centre - text_w / 2, y_of(value + (error or 0)) - text_h - PAD), text, fill=INK)
        draw.multiline_text((centre - _text_size(draw, label)[0] / 2, top + plot_h + PAD), label, fill=INK,
                            align='center')
    draw.line([left, top + plot_h, left + plot_w, top + plot_h], fill=INK)
    return canvas


def colour_legend(entries, width=480, swatch=(14, 10)):
    """Colour swatches with their names, as many to a line as fit in `width`.
    entries: [(name, (r, g, b))]. RGB PIL image."""
    probe = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    cell_w = max(_text_size(probe, name)[0] for name, _ in entries) + swatch[0] + 3 * PAD
    line_h = max(swatch[1], _text_size(probe, 'Ag')[1]) + PAD
    per_line = max(1, (width - PAD) // cell_w)
    lines = -(-len(entries) // per_line)
    canvas = Image.new('RGB', (width, PAD + lines * line_h), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for k, (name, colour) in enumerate(entries):
        x, y = PAD + (k % per_line) * cell_w, PAD + (k // per_line) * line_h
        draw.rectangle([x, y, x + swatch[0], y + swatch[1]], fill=tuple(colour), outline=INK)
        draw.text((x + swatch[0] + PAD, y - 1), name, fill=INK)
    return canvas


def colour_bar(colour_of, low, high, title, width=480, bar_height=12):
    """A horizontal colour scale: colour_of maps a map of values in [0, 1] (1, W) to RGB uint8
    (1, W, 3), as entropy_heatmap does; `low` and `high` are the texts at its ends. RGB PIL image."""
    probe = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    text_h = _text_size(probe, 'Ag')[1]
    canvas = Image.new('RGB', (width, 3 * PAD + 2 * text_h + bar_height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((PAD, PAD), title, fill=INK)
    bar_w = width - 2 * PAD
    row = np.asarray(colour_of(np.linspace(0.0, 1.0, bar_w)[None]), np.uint8).reshape(1, bar_w, 3)
    y = 2 * PAD + text_h
    canvas.paste(Image.fromarray(np.repeat(row, bar_height, axis=0)), (PAD, y))
    draw.text((PAD, y + bar_height + 1), low, fill=INK)
    draw.text((width - PAD - _text_size(draw, high)[0], y + bar_height + 1), high, fill=INK)
    return canvas


def caption(text, width=480):
    """Text (one or more lines) on a white strip `width` wide: a figure's title. RGB PIL image."""
    probe = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    canvas = Image.new('RGB', (width, _text_size(probe, text)[1] + 2 * PAD + 2), BACKGROUND)
    ImageDraw.Draw(canvas).multiline_text((PAD, PAD), text, fill=INK)
    return canvas
