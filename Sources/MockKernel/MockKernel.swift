import IOMMUFD
