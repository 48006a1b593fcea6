"""Parsing, editing and serialising one libvirt ``<interface>`` element with lxml.

Edits change only what they name: every other element and attribute of the device
(model, mac, filterref, boot, alias, address, driver...) stays exactly as it was.
"""

import re

from .errors import InputError


def _etree():
    # lxml costs ~20 ms to import; hooks that never parse XML (most after_* runs) skip it.
    from lxml import etree

    return etree

# Order libvirt itself writes an interface in; new children are placed by it so the
# output reads naturally (libvirt's schema accepts any order).
_CHILD_ORDER = ("mac", "source", "virtualport", "target", "model", "mtu")


class _Prolog(Exception):
    """Raised by :class:`_DoctypeProbe` to stop reading at the first tag."""


class _DoctypeProbe:
    """An lxml parser target that reads only the prolog and says whether it has a DOCTYPE."""

    found = False

    def doctype(self, *_):
        self.found = True
        raise _Prolog()

    def start(self, *_):
        raise _Prolog()

    def end(self, *_):
        pass

    def data(self, *_):
        pass

    def close(self):
        return self.found


def _has_doctype(etree, data):
    """Whether *data* declares a DOCTYPE; reads no further than the root's start tag.

    Before the real parse: an internal subset can define entities (``&m;``) that the
    rewrite could not write back as well-formed XML, or that expand without bound, and
    an external one names files; a device XML from VDSM has none, so any is refused.
    """
    probe = _DoctypeProbe()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, target=probe)
    try:
        etree.fromstring(data, parser)
    except _Prolog:
        pass
    except etree.XMLSyntaxError:
        pass  # the real parse below says what is wrong
    return probe.found


def parse_interface(data, what="device XML"):
    """The ``<interface>`` root element of *data* (bytes), or a one-line InputError.

    Entities are never resolved and nothing is fetched from the network; a document
    with a DOCTYPE is refused before it is parsed.
    """
    etree = _etree()
    if _has_doctype(etree, data):
        raise InputError("%s has a DOCTYPE, which VDSM never writes (a device XML has no "
                         "DTD or entities): refused; remove it" % what)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             remove_blank_text=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as err:
        raise InputError("%s is not well-formed XML: %s" % (what, err.msg or "empty document")) from None
    if root.tag != "interface":
        raise InputError(
            "%s is a <%s> element, expected <interface>: the hook must be configured "
            "for vNIC devices only" % (what, root.tag)
        )
    return root


def serialize(root, original):
    """Bytes for *root* and the comments and processing instructions around it.

    Keeps *original*'s XML declaration (or its absence) and trailing space. libxml2 does
    not keep the white space between top-level nodes, so each comment or processing
    instruction before or after the element goes on a line of its own.
    """
    etree = _etree()
    declaration = re.match(rb"(\xef\xbb\xbf)?<\?xml[ \t\r\n]", original) is not None
    before = [etree.tostring(node, encoding="utf-8", with_tail=False)
              for node in reversed(list(root.itersiblings(preceding=True)))]
    after = [etree.tostring(node, encoding="utf-8", with_tail=False) for node in root.itersiblings()]
    data = etree.tostring(root, encoding="utf-8", with_tail=False)
    parts = before + [data] + after
    if declaration:
        parts.insert(0, b"<?xml version='1.0' encoding='utf-8'?>")
    trailing = original[len(original.rstrip()):]
    return b"\n".join(parts) + trailing


def mac_address(iface):
    """The ``<mac address>`` of the device, or None."""
    mac = iface.find("mac")
    return None if mac is None else mac.get("address")


def _place(iface, child):
    """Insert *child* after the last sibling that libvirt writes before it."""
    rank = _CHILD_ORDER.index(child.tag)
    position = 0
    for index, existing in enumerate(iface):  # comments count: insert() counts them too
        if existing.tag in _CHILD_ORDER[:rank]:
            position = index + 1
    # insert(), not anchor.addnext(): before lxml 5 (EL9 ships 4.6) addnext() also moves
    # the anchor's tail onto the new element, so the indentation would depend on lxml.
    iface.insert(position, child)
    _copy_tail_indent(child)


def _copy_tail_indent(child):
    # Keep the file's indentation: a child's tail is the whitespace before the next
    # sibling (or before the parent's closing tag when it is the last child).
    parent = child.getparent()
    previous = child.getprevious()
    if previous is None:
        child.tail = parent.text
    elif child.getnext() is None:
        child.tail, previous.tail = previous.tail, parent.text
    else:
        child.tail = previous.tail


def ensure_child(iface, tag, **attributes):
    """The single child *tag* with exactly *attributes* set (others on it are kept)."""
    children = iface.findall(tag)
    for extra in children[1:]:
        remove(extra)
    if children:
        child = children[0]
    else:
        child = _etree().Element(tag)
        _place(iface, child)
    for key, value in attributes.items():
        child.set(key, value)
    return child


def remove_children(iface, tag):
    for child in iface.findall(tag):
        remove(child)


def remove(element):
    """Remove *element* and keep the whitespace that followed it in order."""
    parent = element.getparent()
    previous = element.getprevious()
    if previous is not None:
        previous.tail = element.tail
    else:
        parent.text = element.tail
    parent.remove(element)


def set_type(iface, kind):
    iface.set("type", kind)


def set_target(iface, dev):
    ensure_child(iface, "target", dev=dev)


def set_source_bridge(iface, bridge):
    source = ensure_child(iface, "source", bridge=bridge)
    # A bridge source carries only the bridge (drop network=, dev=... of other types).
    for key in list(source.keys()):
        if key != "bridge":
            del source.attrib[key]


def set_mtu(iface, size):
    ensure_child(iface, "mtu", size=str(size))


def set_openvswitch_virtualport(iface, interface_id):
    """Exactly one ``<virtualport type='openvswitch'>`` carrying *interface_id*."""
    remove_children(iface, "virtualport")
    virtualport = ensure_child(iface, "virtualport", type="openvswitch")
    _etree().SubElement(virtualport, "parameters", interfaceid=interface_id)
    return virtualport
