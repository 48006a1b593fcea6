"""Parsing, editing and serialising one libvirt ``<interface>`` element with lxml.

Edits change only what they name: every other element and attribute of the device
(model, mac, filterref, boot, alias, address, driver...) stays exactly as it was.
"""

from .errors import InputError


def _etree():
    # lxml costs ~20 ms to import; hooks that never parse XML (most after_* runs) skip it.
    from lxml import etree

    return etree

# Order libvirt itself writes an interface in; new children are placed by it so the
# output reads naturally (libvirt's schema accepts any order).
_CHILD_ORDER = ("mac", "source", "virtualport", "target", "model", "mtu")


def parse_interface(data, what="device XML"):
    """The ``<interface>`` root element of *data* (bytes), or a one-line InputError."""
    etree = _etree()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)
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
    """Bytes for *root*, keeping *original*'s XML declaration (or its absence) and trailing space."""
    declaration = original.lstrip().startswith(b"<?xml")
    data = _etree().tostring(root, encoding="utf-8", xml_declaration=declaration)
    trailing = original[len(original.rstrip()):]
    return data + trailing


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
