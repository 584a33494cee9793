"""What several test modules share: prepush's commands run as a test reads them, the tree a
difusor must hold, the crash matrix's reader and cortes. Test modules import from here (and
from conftest's fixtures), never from one another."""
